"""The built-in ``alert``: tell people a gate passed or failed.

Another plugin may deliver it (``pytest_snowpipe_alert``); in a task on an account it goes through
the notification integration (:attr:`ActionContext.notify`); locally it is reported in the terminal
summary and, if the environment variable named by ``snowpipe_alert_webhook_env`` holds a URL, posted
there. The URL is a secret: it is never printed, logged or written to a report.
"""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

from pytest_snowpipe.actions.context import ActionContext, ActionOutcome
from pytest_snowpipe.errors import ActionError


def _post_webhook(url: str, payload: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "code", None) or type(exc).__name__
        text = str(reason).replace(url, "<webhook URL>")
        raise ActionError(f"alert webhook post failed ({text}); the URL is withheld") from None


def alert(ctx: ActionContext) -> ActionOutcome:
    """Report the failed (or passed) gate; post to the webhook if one is configured."""
    text = f"pytest-snowpipe gate {ctx.gate.name} {ctx.verdict}"
    if ctx.message:
        text += f": {ctx.message.splitlines()[0][:500]}"
    if ctx.notify is not None:  # in Snowflake: the notification integration
        return ActionOutcome("alert", ctx.notify(text))
    if ctx.hook is not None:  # another plugin may deliver it (Slack, e-mail, PagerDuty...)
        delivered = ctx.hook.pytest_snowpipe_alert(ctx=ctx, text=text)
        if delivered is not None:
            return delivered if isinstance(delivered, ActionOutcome) else ActionOutcome("alert", str(delivered))
    url = os.environ.get(ctx.webhook_env, "").strip()
    if url:
        _post_webhook(
            url,
            {"text": text, "gate": ctx.gate.nodeid, "verdict": ctx.verdict, "metrics": dict(ctx.metrics)},
        )
        return ActionOutcome("alert", f"{text} (posted to ${ctx.webhook_env})")
    return ActionOutcome("alert", text)


run = alert
