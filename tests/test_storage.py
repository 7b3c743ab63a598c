"""Converting provider bytes into variants and saving them: formats, sizes, names, and the
promise that a failed save leaves no file (neither a partial one nor half of a pair)."""

from __future__ import annotations

import errno
import io
import re
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from igny8.media.convert import ImageDecodeError, convert, warm_up
from igny8.media.naming import seo_slug
from igny8.media.stores import LocalMediaStore, StorageError, get_store
from igny8.media.stores import _message as storage_message
from igny8.media.variants import store_image

PIL_NAMES = {"webp": "WEBP", "png": "PNG", "jpeg": "JPEG", "jpg": "JPEG"}


def encoded(size: tuple[int, int] = (1536, 1024), mode: str = "RGB", fmt: str = "PNG") -> bytes:
    colour = (200, 80, 40, 128) if mode == "RGBA" else (200, 80, 40)
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# ---------------------------------------------------------------- convert

@pytest.mark.parametrize("fmt", ["webp", "png", "jpeg", "jpg"])
def test_convert_makes_a_full_size_desktop_and_a_768_wide_mobile(fmt):
    variants = convert(encoded((1536, 1024)), fmt, desktop=True, mobile=True)
    assert [(name, w, h) for name, _data, w, h in variants] == [("desktop", 1536, 1024), ("mobile", 768, 512)]
    for _name, data, width, height in variants:
        image = opened(data)
        assert image.format == PIL_NAMES[fmt] and image.size == (width, height)


@pytest.mark.parametrize("fmt", ["webp", "png", "jpeg"])
def test_a_file_encoded_our_way_is_kept_as_the_desktop_file_and_the_mobile_one_made_from_it(fmt):
    original = encoded((1024, 1024), fmt=PIL_NAMES[fmt])
    desktop, mobile = convert(original, fmt, desktop=True, mobile=True, keep_original=True)
    assert desktop == ("desktop", original, 1024, 1024)  # the very bytes: no second lossy pass
    assert mobile[0] == "mobile" and opened(mobile[1]).size == (768, 768) and opened(mobile[1]).format == PIL_NAMES[fmt]


def test_a_kept_file_is_still_encoded_when_its_format_differs_or_it_must_be_turned_upright():
    png = encoded((1024, 1024), fmt="PNG")
    [(_, webp, _, _)] = convert(png, "webp", desktop=True, mobile=False, keep_original=True)
    assert opened(webp).format == "WEBP"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: shown upright only by readers that honour EXIF
    buffer = io.BytesIO()
    Image.new("RGB", (1024, 512), (200, 80, 40)).save(buffer, format="WEBP", exif=exif.tobytes())
    [(_, upright, width, height)] = convert(buffer.getvalue(), "webp", desktop=True, mobile=False, keep_original=True)
    assert upright != buffer.getvalue() and (width, height) == (512, 1024) and opened(upright).size == (512, 1024)
    frames = [Image.new("RGB", (64, 64), (40 * n, 0, 0)) for n in range(3)]
    animated = io.BytesIO()
    frames[0].save(animated, format="WEBP", save_all=True, append_images=frames[1:])
    [(_, still, _, _)] = convert(animated.getvalue(), "webp", desktop=True, mobile=False, keep_original=True)
    assert opened(still).n_frames == 1  # an animation is never kept: its first frame is stored
    with pytest.raises(ImageDecodeError):  # never kept without being read as an image first
        convert(b"RIFF\x00\x00\x00\x00WEBPnot really", "webp", desktop=True, mobile=False, keep_original=True)


def test_convert_flattens_transparency_for_jpeg_and_keeps_it_for_webp():
    transparent = encoded((1024, 1024), mode="RGBA")
    [(_, jpeg, _, _)] = convert(transparent, "jpeg", desktop=True, mobile=False)
    assert opened(jpeg).mode == "RGB"
    [(_, webp, _, _)] = convert(transparent, "webp", desktop=True, mobile=False)
    assert opened(webp).mode == "RGBA"


@pytest.mark.parametrize("desktop, mobile, names", [
    (True, False, ["desktop"]), (False, True, ["mobile"]), (False, False, ["desktop"]),
])
def test_convert_makes_only_the_enabled_variants_but_always_one(desktop, mobile, names):
    variants = convert(encoded(), "webp", desktop=desktop, mobile=mobile)
    assert [name for name, *_ in variants] == names


def test_a_small_image_is_never_enlarged_for_mobile():
    [_, (_, data, width, height)] = convert(encoded((512, 512)), "png", desktop=True, mobile=True)
    assert (width, height) == (512, 512) == opened(data).size


@pytest.mark.parametrize("data", [b"", b"this is certainly not an image", encoded()[:200]],
                         ids=["empty", "text", "truncated-png"])
def test_data_that_is_not_an_image_raises_decode_error(data):
    with pytest.raises(ImageDecodeError, match="not an image"):
        convert(data, "webp", desktop=True, mobile=True)


def test_an_unknown_format_is_a_programming_error():
    with pytest.raises(ValueError):
        convert(encoded(), "gif", desktop=True, mobile=True)


# ---------------------------------------------------------------- store_image

def test_store_image_writes_both_variants_under_dated_unique_names(tmp_path):
    store = LocalMediaStore(tmp_path / "media")
    variants = store_image(store, encoded(), fmt="webp", desktop=True, mobile=True,
                           slug="how-to-bake-bread-featured", prefix="a7")
    desktop, mobile = variants
    month = datetime.now(UTC).strftime("%Y/%m")
    assert re.fullmatch(rf"a7/{month}/how-to-bake-bread-featured-[0-9a-f]{{8}}\.webp", desktop.key)
    assert mobile.key == desktop.key.removesuffix(".webp") + "-mobile.webp"
    for variant in variants:
        path = tmp_path / "media" / variant.key
        assert variant.url == f"/media/{variant.key}" and store.exists(variant.key)
        assert opened(path.read_bytes()).format == "WEBP" and opened(path.read_bytes()).size == (
            variant.width, variant.height)
        assert variant.bytes == path.stat().st_size and variant.format == "webp"
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, "readable by a web server running as another user"
    assert (desktop.width, mobile.width) == (1536, 768)
    assert len(files_under(tmp_path / "media")) == 2, "no temporary files left behind"


def test_the_same_slug_twice_gives_two_files(tmp_path):
    store = LocalMediaStore(tmp_path)
    first = store_image(store, encoded(), fmt="png", desktop=True, mobile=False, slug="same")
    second = store_image(store, encoded(), fmt="png", desktop=True, mobile=False, slug="same")
    assert first[0].key != second[0].key and first[0].key.endswith(".png")
    assert len(files_under(tmp_path)) == 2


def test_jpeg_files_get_the_jpg_extension(tmp_path):
    [variant] = store_image(LocalMediaStore(tmp_path), encoded(), fmt="jpeg", desktop=True, mobile=False, slug="x")
    assert variant.key.endswith(".jpg") and variant.format == "jpeg"


def test_a_file_in_place_of_the_media_folder_is_a_storage_error_and_leaves_nothing(tmp_path):
    # Tests run as root, so chmod cannot make a folder unwritable; a regular file where the
    # folder should be makes the operating system refuse just the same.
    blocker = tmp_path / "media"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match="Could not save the image"):
        store_image(LocalMediaStore(blocker), encoded(), fmt="webp", desktop=True, mobile=True, slug="x")
    assert files_under(tmp_path) == [blocker]


def test_a_failed_rename_removes_the_temporary_file(tmp_path):
    store = LocalMediaStore(tmp_path)
    (tmp_path / "2026" / "taken.webp").mkdir(parents=True)  # a folder where the file should go
    with pytest.raises(StorageError, match="Could not save the image"):
        store.save("2026/taken.webp", b"data", "image/webp")
    assert files_under(tmp_path) == []


class SecondSaveFails(LocalMediaStore):
    """A real local store whose second write fails, as a full disk would after the first file."""

    def save(self, key: str, data: bytes, content_type: str) -> None:
        if key.endswith("-mobile.webp"):
            raise StorageError("Could not save the image: the disk is full.")
        super().save(key, data, content_type)


def test_when_the_second_variant_fails_the_first_is_deleted(tmp_path):
    store = SecondSaveFails(tmp_path)
    with pytest.raises(StorageError, match="disk is full"):
        store_image(store, encoded(), fmt="webp", desktop=True, mobile=True, slug="pair")
    assert files_under(tmp_path) == [], "no half-stored image"


def test_decode_errors_happen_before_anything_is_written(tmp_path):
    with pytest.raises(ImageDecodeError):
        store_image(LocalMediaStore(tmp_path), b"garbage", fmt="webp", desktop=True, mobile=True, slug="x")
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("code, text", [
    (errno.EACCES, "not writable"), (errno.EROFS, "not writable"), (errno.ENOSPC, "disk is full"),
    (errno.EDQUOT, "disk is full"), (errno.ENOTDIR, "in the way"),
])
def test_os_errors_become_messages_a_writer_understands(code, text):
    assert text in storage_message(OSError(code, "raw"))


@pytest.mark.parametrize("key", ["../escape.webp", "/etc/passwd", "a//b.webp", "a\\b.webp", ""])
def test_keys_cannot_escape_the_store_root(tmp_path, key):
    with pytest.raises(ValueError):
        LocalMediaStore(tmp_path).save(key, b"x", "image/webp")


def test_delete_removes_the_file_and_tolerates_a_missing_one(tmp_path):
    store = LocalMediaStore(tmp_path)
    store.save("a1/x.png", b"x", "image/png")
    store.delete("a1/x.png")
    store.delete("a1/x.png")
    assert not store.exists("a1/x.png")


def test_get_store_uses_media_root(tmp_path):
    store = get_store({"MEDIA_ROOT": str(tmp_path)})
    assert isinstance(store, LocalMediaStore) and store.root == tmp_path and store.url("a/b.png") == "/media/a/b.png"


# ---------------------------------------------------------------- seo_slug

@pytest.mark.parametrize("title, prompt, image_type, position, slug", [
    ("How to Bake Bread", "a loaf", "featured", 0, "how-to-bake-bread-featured"),
    ("How to Bake Bread", "a loaf", "in_article", 2, "how-to-bake-bread-in-article-2"),
    ("Crème brûlée à la maison!", "", "in_article", 1, "creme-brulee-a-la-maison-in-article-1"),
    ("", "A loaf on a board", "featured", 0, "a-loaf-on-a-board-featured"),
    ("日本語", "", "featured", 0, "image-featured"),
])
def test_seo_slug(title, prompt, image_type, position, slug):
    assert seo_slug(title, prompt, image_type, position) == slug


def test_a_long_title_is_cut_at_a_word_boundary():
    slug = seo_slug("The complete beginner's guide to baking sourdough bread at home " * 3, "", "featured", 0)
    base = slug.removesuffix("-featured")
    assert len(base) <= 60 and not base.endswith("-") and base.startswith("the-complete-beginner-s-guide")
    assert ("the-complete-beginner-s-guide-to-baking-sourdough-bread-at-home-" * 3).startswith(base + "-")


def test_warm_up_loads_every_codec_without_starting_a_thread():
    """The worker calls it before RQ forks: threads would not survive the fork."""
    before = threading.active_count()
    warm_up()
    assert threading.active_count() == before
    assert {"WEBP", "PNG", "JPEG"} <= set(Image.SAVE)
