"""Account webhooks: the setting (``settings``), signing (``signing``), creating and queueing a
delivery (``dispatch.emit``) and sending it with retries (``delivery``, an RQ job)."""
