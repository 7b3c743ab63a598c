"""The demo account seeded by ``make run`` and ``flask seed-demo`` (idempotent)."""

from __future__ import annotations

from sqlalchemy import select

from ..content.articles import create_article, validate_article
from ..extensions import db
from ..integrations.settings import save_image_generation
from ..models import Account, Content
from .auth import create_user, find_user_by_email

DEMO_EMAIL = "demo@igny8.test"
DEMO_PASSWORD = "demo-password"

DEMO_ARTICLES = [
    {
        "title": "How to Bake Sourdough Bread at Home",
        "html": "<p>A beginner's guide to a crusty, open-crumb loaf.</p>",
        "featured_prompt": "A rustic sourdough loaf on a floured wooden board, morning light",
        "in_article_prompts": [
            "Bubbly sourdough starter in a glass jar",
            "Hands folding dough in a ceramic bowl",
            "Shaped dough resting in a banneton basket",
            "Scoring the loaf with a razor blade before baking",
        ],
    },
    {
        "title": "10 Houseplants That Thrive in Low Light",
        "html": "<p>Green up the darkest corner of your flat.</p>",
        "featured_prompt": "A cosy living room corner full of leafy houseplants",
        "in_article_prompts": ["A snake plant in a white pot", "A pothos trailing from a bookshelf"],
    },
    {
        "title": "A Weekend in Lisbon on a Budget",
        "html": "<p>Trams, tiles and pastéis de nata.</p>",
        "featured_prompt": "A yellow tram climbing a narrow Lisbon street at sunset",
        "in_article_prompts": ["Blue azulejo tiles on a building facade", "Pastéis de nata on a plate",
                               "View over Alfama rooftops to the river"],
    },
]


def seed_demo() -> Account:
    """Create the demo account, admin user, settings and articles unless they exist."""
    user = find_user_by_email(DEMO_EMAIL)
    if user is None:
        account = Account(name="Demo")
        db.session.add(account)
        # Admin of its account and operator of the platform, so `make run` shows everything.
        create_user(DEMO_EMAIL, DEMO_PASSWORD, account=account, is_admin=True, is_operator=True)
        db.session.flush()
        save_image_generation(account.id, {"provider": "local", "model": "placeholder"})
    else:
        account = user.account
        user.is_operator = True  # demo users seeded before the operator role existed
    existing = set(db.session.scalars(select(Content.title).filter_by(account_id=account.id)))
    for article in DEMO_ARTICLES:
        if article["title"] not in existing:
            create_article(account.id, validate_article(article))
    db.session.commit()
    return account
