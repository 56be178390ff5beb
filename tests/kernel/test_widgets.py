"""The notebook widgets without a browser: build them, set values, click, read state and messages.

What a front end would receive is recorded by :class:`RecordingComm` (installed as
the ``comm`` package's factory), so tests can check both the widget state and the
messages that would travel over IOPub. Tests that log in use a real Prefect server
and run in a fresh interpreter (``run_scenario``): a login is process-global. The
helpers that drive and record widgets are :mod:`prefect_nbauth.testing.widgets`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any, Callable

import pytest

from prefect_nbauth.testing import wait_until
from prefect_nbauth.testing.widgets import (
    all_state_json,
    all_widgets,
    customs_of,
    front_end_update,
    page_sends,
    type_secret,
    updates_of,
)

# ----------------------------------------------------------------- helpers


class FakeStream:
    """The shape of prefect_nbauth.events._stream' stream: state, stats, run_in_background."""

    def __init__(self, **filters: Any) -> None:
        self.filters = filters
        self.state = "connecting"
        self.stats = SimpleNamespace(live=0, reconciled=0, duplicates=0, malformed=0, reconnects=0,
                                     last_error=None)
        self.on_event: Callable[[Any], None] | None = None
        self.on_change: Callable[[Any], None] | None = None
        self.stopped = threading.Event()

    def run_in_background(self, *, on_event: Callable[[Any], None], on_change: Callable[[Any], None]) -> Any:
        self.on_event, self.on_change = on_event, on_change
        self.state = "connected"
        on_change(self)
        stream = self

        class Handle:
            def stop(self) -> None:
                stream.state = "stopped"
                stream.stopped.set()

        return Handle()

    def emit(self, event: Any) -> None:
        self.stats.live += 1
        assert self.on_event is not None
        self.on_event(event)


class FakeFactory:
    def __init__(self) -> None:
        self.streams: list[FakeStream] = []

    def __call__(self, **filters: Any) -> FakeStream:
        stream = FakeStream(**filters)
        self.streams.append(stream)
        return stream


def make_event(name: str, resource: str = "nbauth.test", **payload: Any) -> Any:
    from prefect.events.schemas.events import Event

    return Event(event=name, resource={"prefect.resource.id": resource}, payload=payload)


# ----------------------------------------------------------------- fixtures


# ------------------------------------------------------------ core import


def test_importing_the_core_imports_neither_ipython_nor_ipywidgets() -> None:
    code = ("import json, sys; import prefect_nbauth, prefect_nbauth.session._listeners; "
            "print(json.dumps(sorted(m for m in ('IPython', 'ipywidgets', 'ipykernel', 'comm') "
            "if m in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    # And it works with IPython impossible to import, until the extension is loaded.
    code = ("import sys; sys.modules['IPython'] = None; sys.modules['ipywidgets'] = None; "
            "import prefect_nbauth; prefect_nbauth.status(check_server=False); print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr


def test_listeners_subscribe_notify_unsubscribe() -> None:
    from prefect_nbauth.session import _listeners

    seen: list[str] = []

    def broken(event: str) -> None:
        raise RuntimeError("a broken subscriber")

    off_broken = _listeners.subscribe(broken)
    off = _listeners.subscribe(seen.append)
    _listeners.notify("login")
    off()
    off()  # twice is harmless
    _listeners.notify("logout")
    off_broken()
    assert seen == ["login"]
    with pytest.raises(TypeError):
        _listeners.subscribe("not callable")  # type: ignore[arg-type]


# ------------------------------------------------------------ login widget


def _state_everywhere(form: Any) -> str:
    """Every place widget state goes: each model's get_state(), the manager state, the embed data."""
    import ipywidgets
    from ipywidgets.embed import embed_data, embed_minimal_html

    texts = [all_state_json(form),
             json.dumps([w.trait_values() for w in all_widgets(form)], default=str),
             json.dumps(ipywidgets.Widget.get_manager_state(drop_defaults=False), default=str),
             json.dumps(embed_data(views=[form], drop_defaults=False), default=str)]
    import io

    page = io.StringIO()
    embed_minimal_html(page, views=[form], title="x")
    texts.append(page.getvalue())
    return "\n".join(texts)


def test_secret_boxes_never_hold_the_value_in_widget_state(comm_log: list[dict[str, Any]]) -> None:
    from prefect_nbauth.notebook.widgets.secret_input import SecretInput
    from prefect_nbauth.widgets import LoginWidget

    canary = "CANARY" + uuid.uuid4().hex
    form = LoginWidget(api_url="http://127.0.0.1:9/api")
    fields = [form.panels['auth-string'].parts['secret'], form.panels['api-key'].parts['secret'], form.panels['headers'].parts['rows'].rows[0][1]]
    assert all(isinstance(f, SecretInput) for f in fields)
    assert "value" not in fields[0].keys  # no trait to hold it, synced or not
    for i, field in enumerate(fields):
        type_secret(field, f"nbuser:{canary}-{i}")  # what the page sends on Enter/request

    for i, field in enumerate(fields):
        assert field.secret is not None and field.secret.reveal() == f"nbuser:{canary}-{i}"
        assert field.held is True  # the page shows "received, hidden"
    everything = _state_everywhere(form)
    assert "SecretInput" in everything or "AnyModel" in everything  # the boxes are in that state
    assert canary not in everything
    assert all(canary not in m["json"] for m in comm_log), "the secret went back to the front end"
    assert any(m["data"].get("state", {}).get("held") is True for m in updates_of(comm_log, fields[0]))
    assert canary not in repr(form) and canary not in json.dumps(form._repr_mimebundle_(), default=str)
    assert canary not in repr(fields[0]) and canary not in repr(fields[0].secret)
    form.close()
    assert fields[0].secret is None


def test_the_page_protocol_of_the_secret_box() -> None:
    """secret_input.js never writes a trait, empties the box as it reads it, and sends only a sealed value."""
    import re

    from prefect_nbauth.notebook.widgets import secret_input

    js = (secret_input._HERE / "secret_input.js").read_text()
    code = "\n".join(line for line in js.splitlines() if not line.lstrip().startswith("//"))
    assert "model.set(" not in code and "save_changes" not in code and "touch(" not in code
    send = code.index("function sendValue")
    body = code[send:code.index("\n  }\n", send)]
    assert body.index('input.value = ""') < body.index("model.send(")  # emptied as it is read
    sends = re.findall(r"model\.send\(\{([^}]*)\}", code)
    assert len(sends) == 3 and all("value" not in s for s in sends), sends  # sealed, open, closed
    assert 'kind: "sealed", sealed,' in body and "await seal(" in body
    assert "isSecureContext" in code and "crypto.subtle" in code  # WebCrypto, nothing to install
    assert secret_input.SecretInput._esm == js  # shipped as is, no build step


def test_the_secret_crosses_the_comm_sealed_and_only_its_form_opens_it(comm_log: list[dict[str, Any]]) -> None:
    """Issue 21 item 8: the value is sealed for the kernel's key pair (one per form, dropped on close)."""
    import ipywidgets

    from prefect_nbauth.notebook.widgets.secret_input import SecretInput
    from prefect_nbauth.testing.canaries import leaks, make_canary
    from prefect_nbauth.widgets import LoginWidget

    canary = make_canary()
    form, other = LoginWidget(api_url="http://127.0.0.1:9/api"), LoginWidget(api_url="http://127.0.0.1:9/api")
    boxes = [w for w in all_widgets(form._stack) if isinstance(w, SecretInput)]
    assert len(boxes) == 3 and len({b.public_key for b in boxes}) == 1  # one key pair for the form
    box, other_box = form.panels["auth-string"].parts["secret"], other.panels["auth-string"].parts["secret"]
    assert other_box.public_key != box.public_key
    message = {"kind": "sealed", "sealed": box.seal(canary), "enter": False, "reply_to": None, "view": "v1"}
    assert leaks(json.dumps(message), canary) == []  # what a --debug kernel or a proxy would log
    page_sends(box, message)
    assert box.secret is not None and box.secret.reveal() == canary
    # Another form's key cannot open it: dropped, said, never shown.
    page_sends(other_box, message)
    assert other_box.secret is None and "could not encrypt" in other.message
    # A gateway's JWT is longer than RSA-OAEP alone carries: the one-time AES key carries it.
    long_token = "eyJhbGciOiJSUzI1NiJ9." + "x" * 3000 + ".sig"
    type_secret(form.panels["headers"].parts["rows"].rows[0][1], long_token)
    assert form.panels["headers"].parts["rows"].rows[0][1].secret.reveal() == long_token
    # A value in clear (an old page) is dropped unread and reported, not echoed.
    page_sends(other_box, {"kind": "secret", "value": canary, "enter": True, "reply_to": None, "view": "v1"})
    assert other_box.secret is None and "unencrypted" in other.message and not other.busy
    assert canary not in other.message + all_state_json(other) + json.dumps([m["data"] for m in comm_log])
    assert canary not in repr(form._sealing_key) and "PRIVATE" not in all_state_json(form)
    # The private half stays in the kernel and goes with the form.
    assert all("PRIVATE KEY" not in json.dumps(w.get_state(), default=str) for w in all_widgets(form))
    form.close()
    assert form._sealing_key.dropped and box.secret is None
    page_sends(box, message)
    assert box.secret is None
    other.close()
    alone = SecretInput()  # a box made alone has its own key, dropped when it closes
    alone.close()
    assert alone._sealing_key.dropped and isinstance(alone, ipywidgets.DOMWidget)


def test_a_page_that_cannot_seal_says_so_and_sends_nothing(comm_log: list[dict[str, Any]]) -> None:
    """Plain http from another host is not a secure context: no WebCrypto, so the boxes are off."""
    from prefect_nbauth.widgets import LoginWidget

    form = LoginWidget(api_url="http://127.0.0.1:9/api")
    box = form.panels["auth-string"].parts["secret"]
    page_sends(box, {"kind": "view", "state": "open", "view": "v1", "secure": False})
    assert box.views == 0 and box.insecure_views == 1  # not asked for a value: it would not answer
    assert "cannot encrypt a secret for the kernel" in form.message and "https" in form.message
    form._button.click()  # not "type the auth string first": it cannot be sent from there
    assert "cannot encrypt a secret for the kernel" in form.message and not form.busy
    assert not [c for c in customs_of(comm_log, box) if c["kind"] == "request"]
    form.close()


def test_enter_logs_in_and_log_in_asks_the_page(comm_log: list[dict[str, Any]], monkeypatch) -> None:
    from prefect_nbauth.notebook.widgets import login as login_module
    from prefect_nbauth.testing._server import free_port
    from prefect_nbauth.widgets import LoginWidget

    port = free_port()
    form = LoginWidget(api_url=f"http://127.0.0.1:{port}/api")
    box = form.panels["auth-string"].parts["secret"]
    # No page has said it can answer: Enter in the box submits at once.
    type_secret(box, "nbuser:Zq7-one-x9", enter=True)  # not a word: a secret is masked in all later text
    assert form.busy or form.message
    assert form.wait(30) and "Could not reach the server." in form.message
    assert box.secret is None  # dropped after the attempt

    # A page shows the box: Log in asks it for what it holds, and waits for the answer.
    page_sends(box, {"kind": "view", "state": "open", "view": "v1", "secure": True})
    assert box.views == 1
    form._button.click()
    requests = [c for c in customs_of(comm_log, box) if c["kind"] == "request"]
    assert len(requests) == 1 and not form.busy  # nothing submitted before the answer
    type_secret(box, "nbuser:Zq7-two-x9", reply_to=requests[0]["id"])
    assert form.wait(30) and "Could not reach the server." in form.message
    assert box.secret is None

    # A page that went away without saying so: Log in goes on after REQUEST_TIMEOUT.
    monkeypatch.setattr(login_module, "REQUEST_TIMEOUT", 0.2)
    form._button.click()
    wait_until(lambda: "Type the auth string" in form.message, 10, "the timed-out request to go on")
    page_sends(box, {"kind": "view", "state": "closed", "view": "v1"})
    assert box.views == 0
    # Messages that are not ours are ignored.
    page_sends(box, {"kind": "sealed", "sealed": "not a sealed value"})
    page_sends(box, ["not", "a", "dict"])  # type: ignore[arg-type]
    assert box.secret is None
    form.close()


def test_login_form_explains_what_is_missing_and_keeps_the_form(comm_log: list[dict[str, Any]]) -> None:
    from prefect_nbauth.widgets import LoginWidget

    form = LoginWidget(api_url="http://127.0.0.1:9/api")
    form._button.click()
    assert "Type the auth string" in form.message and not form.busy

    # A URL that cannot work: refused before anything is sent, shown in the form.
    form.url_box.value = "ftp://example.com/some/path"
    type_secret(form.panels['auth-string'].parts['secret'], "nbuser:CANARY-bad-url")
    form._button.click()
    assert "must start with http:// or https:// (not ftp://example.com)" in form.message
    assert "some/path" not in form.message and "CANARY" not in form.message
    assert form.panels['auth-string'].parts['secret'].held  # kept: fix the URL and click again
    assert form.url_box.value == "ftp://example.com/some/path"  # the form is kept
    assert not form._button.disabled and not form.busy

    form.select("api-key")  # Prefect Cloud: its panel has no URL box
    assert form._stack.selected_index == 1 and form.url_box not in form.panels["api-key"].children
    form._button.click()
    assert "API key" in form.message
    form.select("headers")
    form.url_box.value = "http://127.0.0.1:9/api"
    form._button.click()
    assert "at least one header" in form.message
    form.close()


@pytest.mark.parametrize("pasted", [
    "http://nbuser:{c}@127.0.0.1:4200/api",     # userinfo: cleared as soon as the kernel sees it
    "ftp://nbuser:{c}@example.com/api",
    "http://nbuser:{c}@/api",
])
def test_url_box_with_userinfo_is_cleared_without_echo(comm_log: list[dict[str, Any]], pasted: str) -> None:
    from prefect_nbauth.widgets import LoginWidget

    canary = "CANARY" + uuid.uuid4().hex
    form = LoginWidget(api_url="http://127.0.0.1:9/api")
    front_end_update(form.url_box, value=pasted.format(c=canary))
    assert form.url_box.value == ""
    assert "held a user name or password, so it was cleared" in form.message
    assert canary not in form.message and canary not in form._message.value
    assert canary not in all_state_json(form) and "nbuser" not in form.message
    # The kernel told the page to empty the box.
    assert any(m["data"].get("state", {}).get("value") == "" for m in updates_of(comm_log, form.url_box))
    form.close()


@pytest.mark.parametrize("pasted", ["{c}", "http://127.0.0.1:{c}/api", "{c}:{c}", "http:///{c}"])
def test_a_secret_pasted_into_the_url_box_is_not_echoed(comm_log: list[dict[str, Any]], pasted: str) -> None:
    from prefect_nbauth.widgets import LoginWidget

    canary = "Zq7" + uuid.uuid4().hex
    form = LoginWidget(api_url="")
    front_end_update(form.url_box, value=pasted.format(c=canary))
    type_secret(form.panels['auth-string'].parts['secret'], "nbuser:pw")
    form._button.click()
    assert form.wait(30)
    assert "cleared" in form.message, form.message
    assert canary not in form.message and canary not in form._message.value
    assert form.url_box.value == "" and canary not in all_state_json(form)
    form.close()


def test_a_choice_is_one_entry_label_and_panel_builder(comm_log: list[dict[str, Any]]) -> None:
    """Issue 25 item 14: the choices are data. A new one (as the SSO and Hub choices will be)
    is one Choice: it gets its label in the bar, its panel, Enter and Log in, with nothing
    else changed in the form; one not available here is not offered."""
    from prefect_nbauth.notebook.widgets._login_choices import CHOICES, Attempt, Choice, Panel
    from prefect_nbauth.widgets import LoginWidget

    ran: list[str] = []

    def hub(form: Any) -> Panel:
        box = form.secret_box("Hub token", "from JupyterHub", "pnb-hub")

        def prepare() -> Attempt:
            secret = box.take()
            ran.append(secret.reveal() if secret else "")
            return Attempt(lambda: None, [secret] if secret else [])

        return Panel([box], lambda: [box], prepare, {"secret": box})

    entries = [Choice("hub", lambda: "Use my Hub sign-in (alice)", hub, default_for=lambda url: True),
               *CHOICES, Choice("nowhere", "Not here", hub, available=lambda: False)]
    form = LoginWidget(api_url="http://127.0.0.1:9/api",
                       choices=[c for c in entries if c.available()])
    assert form._bar.labels == ["Use my Hub sign-in (alice)", "Self-hosted server", "Prefect Cloud",
                                "Gateway headers", "Sign in with SSO"]
    assert form.mode == "hub" and form._stack.selected_index == 0  # first, and the default for this URL
    assert len(form._stack.children) == 5
    type_secret(form.panels["hub"].parts["secret"], "hub-token", enter=True)  # Enter logs in
    assert form.wait(30) and ran == ["hub-token"]
    front_end_update(form._bar, index=2)  # a click on "Prefect Cloud" in the page
    assert form.mode == "api-key" and form._stack.selected_index == 2
    form.close()
    with pytest.raises(ValueError, match="mode must be one of"):
        LoginWidget(mode="nowhere")  # not offered here
    assert [c.key for c in CHOICES] == ["auth-string", "api-key", "headers", "sso"]


def test_no_part_of_the_form_waits_for_lumino_to_bind_its_listeners(comm_log: list[dict[str, Any]]) -> None:
    """Issue 25 item 2: a restored ipywidgets Tab (Lumino TabBar) can miss "before-attach" and
    stay dead after a reload; the form uses no such widget (the browser proof is
    tests/browser/test_browser_login_form.py)."""
    import ipywidgets

    from prefect_nbauth.notebook.widgets import choice_bar
    from prefect_nbauth.widgets import LoginWidget

    form = LoginWidget()
    parts = all_widgets(form)
    assert not [w for w in parts if isinstance(w, (ipywidgets.Tab, ipywidgets.Accordion))]
    assert any(isinstance(w, choice_bar.ChoiceBar) for w in parts)
    assert any(isinstance(w, ipywidgets.Stack) for w in parts)
    js = choice_bar.ChoiceBar._esm
    render = js[js.index("function render"):]
    assert 'addEventListener("click"' in render and 'addEventListener("keydown"' in render
    form.close()


PASTED_TOKENS = [
    'p"q\'r\\s-CANARY{hex}',                                        # prefect_nbauth.testing.canaries' shape
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJDQU5BUlki{hex}.c2lnbmF0dXJl",  # a JWT (a gateway's token)
    "pnu_CANARY{hex}",                                             # a Prefect Cloud key
    "CANARYtokenCANARYtokenCANARY{hex}",                           # letters and digits, one long run
    "{hex8}-{hex4}-4{hex3}-a{hex3}-{hex12}",                       # a UUID key
]


def _token(shape: str) -> str:
    h = uuid.uuid4().hex + uuid.uuid4().hex
    return shape.format(hex=h[:32], hex8=h[:8], hex4=h[8:12], hex3=h[12:15], hex12=h[15:27])


@pytest.mark.parametrize("shape", PASTED_TOKENS, ids=["canary", "jwt", "cloud-key", "long-run", "uuid"])
def test_every_free_text_box_refuses_a_pasted_token_and_never_echoes_it(comm_log: list[dict[str, Any]],
                                                                        shape: str) -> None:
    """Issue 21 item 5: every text box of every panel (the URL, each header Name) is guarded alike:
    a token pasted there is emptied, not sent back, and no message, state or saved form holds it."""
    import ipywidgets

    from prefect_nbauth.notebook.widgets._free_text import GuardedText
    from prefect_nbauth.testing.canaries import leaks
    from prefect_nbauth.widgets import LoginWidget

    form = LoginWidget(api_url="http://127.0.0.1:9/api")
    form.panels["headers"].parts["rows"].add()  # a second row: every row is guarded
    checked = 0
    for key, panel in form.panels.items():
        form.select(key)
        texts = {id(w): w for child in panel.children for w in all_widgets(child)
                 if isinstance(w, (ipywidgets.Text, ipywidgets.Textarea))}.values()
        for box in texts:
            assert isinstance(box, GuardedText), f"{key}: an unguarded text box {box!r}"
            token = _token(shape)
            sent = len(comm_log)
            front_end_update(box, value=token)  # pasted in the page
            if box.value:  # a URL box waits for Log in ("http://1" is on its way to a URL)
                form._button.click()
                assert form.wait(30)
            assert box.value == "", (key, box.description)
            assert "cleared" in form.message and "not shown here" in form.message, form.message
            everywhere = _state_everywhere(form) + form.message + json.dumps([m["data"] for m in comm_log[sent:]])
            assert leaks(everywhere, token) == [], (key, box.description)
            box.value = "http://127.0.0.1:9/api" if box is form.url_box else ""
            checked += 1
    # The URL box (shared by three panels: checked in each), two header names, the SSO issuer and client id.
    assert checked == 7
    form.close()


def test_a_swapped_header_name_and_value_is_refused_without_echo(comm_log: list[dict[str, Any]]) -> None:
    from prefect_nbauth.testing.canaries import leaks
    from prefect_nbauth.widgets import LoginWidget

    token = _token(PASTED_TOKENS[1])
    form = LoginWidget(api_url="http://127.0.0.1:9/api", mode="headers")
    rows = form.panels["headers"].parts["rows"]
    name, value = rows.rows[0]
    front_end_update(name, value=token)  # the token in the Name box ...
    type_secret(value, "cf-access-token")  # ... and the header's name in the Value box
    assert name.value == "" and "not a header name" in form.message  # emptied as soon as it arrived
    form._button.click()
    assert form.wait(30) and "at least one header" in form.message and form.result is None
    assert leaks(_state_everywhere(form) + form.message + json.dumps([m["data"] for m in comm_log]), token) == []
    # Header names people use are accepted as typed; a missing value names the row, not the header.
    for header in ("cf-access-token", "X-API-Key", "Authorization", "X-B3-TraceId", "x_gateway_user"):
        front_end_update(name, value=header)
        assert name.value == header, header
    rows.add()
    front_end_update(rows.rows[1][0], value="X-Second")
    form._button.click()
    assert "Type a value for the header in row 2 first." in form.message and "X-Second" not in form.message
    form.close()


def test_errors_lead_with_a_sentence_and_show_at_most_scheme_and_host(comm_log: list[dict[str, Any]]) -> None:
    from prefect_nbauth.testing._server import free_port
    from prefect_nbauth.widgets import LoginWidget

    url = f"http://127.0.0.1:{free_port()}/api/PATHCANARY"
    form = LoginWidget(api_url=url)
    type_secret(form.panels['auth-string'].parts['secret'], "nbuser:pw")
    started = time.perf_counter()
    form._button.click()
    returned_after = time.perf_counter() - started
    assert returned_after < 0.5  # the click only starts a worker thread
    assert form.wait(30)
    # Nobody is logged in: the note says what is true then, not "the login in force".
    assert form.message.startswith("Could not reach the server. Nothing was changed: Prefect in this kernel keeps "
                                   "the settings it started with (no login)."), form.message
    assert "login in force" not in form.message
    assert "ServerUnreachableError" in form.message  # in the details
    assert "PATHCANARY" not in form.message and "PATHCANARY" not in form._message.value
    html = form._message.value
    lead = html[:html.index("<details")]
    assert "Error:" not in lead and "http" not in lead and 'class="pnb-lead"' in lead
    assert '<details class="pnb-details">' in html and "<details open" not in html  # collapsed
    texts = [m["data"]["state"].get("value", "") for m in updates_of(comm_log, form._message)]
    assert any("Connecting…" in t for t in texts), texts  # shown while it validated
    form.close()


def test_a_login_or_logout_elsewhere_clears_a_stale_error(comm_log: list[dict[str, Any]]) -> None:
    from prefect_nbauth.session import _listeners
    from prefect_nbauth.widgets import LoginWidget

    form = LoginWidget(api_url="http://127.0.0.1:9/api")
    form._button.click()
    assert 'class="pnb-error"' in form._message.value
    _listeners.notify("login")  # as login() does after login() / %prefect_login elsewhere
    assert "pnb-error" not in form._message.value and "Logged in from elsewhere" in form.message
    form._button.click()
    assert 'class="pnb-error"' in form._message.value
    _listeners.notify("logout")
    assert "pnb-error" not in form._message.value and "Logged out" in form.message
    _listeners.notify("refresh")  # not a change of who is logged in: nothing to say
    assert "Logged out" in form.message
    form.close()
    form._button.click()  # a closed form is no longer subscribed
    message = form.message
    _listeners.notify("login")
    assert form.message == message


def test_login_form_colours_come_from_the_theme(comm_log: list[dict[str, Any]]) -> None:
    import re

    from prefect_nbauth.notebook.widgets.choice_bar import ChoiceBar
    from prefect_nbauth.notebook.widgets.secret_input import SecretInput
    from prefect_nbauth.widgets import LoginWidget

    form = LoginWidget(api_url="http://127.0.0.1:9/api")
    form._button.click()
    html = form._message.value
    assert "color" not in html and not re.search(r"#[0-9a-fA-F]{3,6}\b", html)  # no fixed colours
    css = SecretInput._css
    for line in (css + ChoiceBar._css).splitlines():  # the form's sheet and its choices'
        if re.search(r"(^|[\s;{])(color|background|border(-color)?)\s*:", line) and "transparent" not in line:
            assert "var(--jp-" in line, line  # every colour from a theme variable (with a fallback)
    for kind in ("error", "ok", "info", "choose"):
        assert f".pnb-{kind}" in css
    form.close()


def test_widgets_have_readable_text_forms(comm_log: list[dict[str, Any]]) -> None:
    from prefect_nbauth.widgets import AuthStatusWidget, EventStreamWidget, LoginWidget

    factory = FakeFactory()
    for widget in (LoginWidget(), AuthStatusWidget(check_server=False, watch=False),
                   EventStreamWidget(stream_factory=factory)):
        text = widget._repr_mimebundle_()["text/plain"]
        assert not text.startswith(("VBox(", "LoginWidget(", "AuthStatusWidget(", "EventStreamWidget("))
        assert text == repr(widget) and len(text) > 20
        assert "application/vnd.jupyter.widget-view+json" in widget._repr_mimebundle_()
        widget.close()
    assert "Prefect login form" in repr(LoginWidget())
    assert repr(AuthStatusWidget(check_server=False, watch=False)).startswith("Prefect auth: ")


# ------------------------------------------------------------ status widget


def test_status_widget_shows_mode_and_countdown(comm_log: list[dict[str, Any]]) -> None:
    from prefect_nbauth.notebook.widgets.status import countdown
    from prefect_nbauth.widgets import AuthStatusWidget

    widget = AuthStatusWidget(check_server=False, watch=False)
    html = widget._summary.value
    assert 'class="pnb-mode ' in html and ">none<" in html
    assert "not checked" in html
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert countdown(now + timedelta(seconds=65), now).startswith("expires in 1m 05s")
    assert countdown(now + timedelta(hours=2, minutes=5), now).startswith("expires in 2h 05m")
    assert countdown(now - timedelta(seconds=3), now).startswith("expired 0m 03s ago")
    assert countdown(None) == ""
    widget.close()


def test_status_widget_follows_notifications_and_closes_cleanly(comm_log: list[dict[str, Any]]) -> None:
    from prefect_nbauth.session import _listeners
    from prefect_nbauth.widgets import AuthStatusWidget

    widget = AuthStatusWidget(check_server=False)
    before = widget._generation
    _listeners.notify("login")  # as login() will
    wait_until(lambda: widget._generation > before, 5, "the widget to re-read the status")
    widget.close()
    from prefect_nbauth.notebook.widgets.status import _WATCHER

    wait_until(lambda: _WATCHER._thread is None, 5, "the watcher thread to stop")


# ------------------------------------------------------------ event widget


def test_event_widget_keeps_the_newest_rows_in_a_ring_buffer(comm_log: list[dict[str, Any]]) -> None:
    from prefect_nbauth.widgets import EventStreamWidget

    factory = FakeFactory()
    widget = EventStreamWidget(prefix=["nbauth."], resource="r.1, r.2", max_rows=10, stream_factory=factory)
    stream = factory.streams[0]
    assert stream.filters == {"prefix": ["nbauth."], "resource": ["r.1", "r.2"], "since": None}
    for i in range(50):
        stream.emit(make_event(f"nbauth.ev-{i}", f"r.{i}", i=i, note="<b>x</b>"))
    rows = widget.rows
    assert [r.event for r in rows] == [f"nbauth.ev-{i}" for i in range(49, 39, -1)]
    assert rows[0].payload == '{"i":49,"note":"<b>x</b>"}' and rows[0].resource == "r.49"
    wait_until(lambda: "nbauth.ev-49" in widget._view.value, 5, "the newest row in the view")
    view = widget._view.value
    assert "nbauth.ev-39" not in view and "nbauth.ev-40" in view
    assert "&lt;b&gt;x&lt;/b&gt;" in view and "<b>x</b>" not in view  # escaped
    assert "<b>connected</b>" in view and "live 50" in view
    text = repr(widget)
    assert text.startswith("Prefect events: connected") and "nbauth.ev-49" in text
    widget.close()
    assert stream.stopped.is_set() and widget._throttle.closed


def test_event_widget_updates_are_batched_and_capped(comm_log: list[dict[str, Any]]) -> None:
    from prefect_nbauth.widgets import EventStreamWidget

    factory = FakeFactory()
    widget = EventStreamWidget(max_rows=50, stream_factory=factory)
    stream = factory.streams[0]
    wait_until(lambda: "connected" in widget._view.value, 5, "the connected state")
    make_event("nbauth.warm-up")  # the first one imports Prefect's event schemas (seconds under load)
    start = time.monotonic()
    n = 0
    pace = threading.Event()
    while time.monotonic() - start < 2.0:  # 1,000 events/s, in bursts of 10
        for _ in range(10):
            stream.emit(make_event(f"nbauth.burst-{n}", payload_text="p" * 60))
            n += 1
        pace.wait(max(0.0, start + n / 1000 - time.monotonic()))
    elapsed = time.monotonic() - start
    wait_until(lambda: f"nbauth.burst-{n - 1}" in widget._view.value, 5, "the last event in the view")
    updates = [m for m in updates_of(comm_log, widget._view) if m["time"] >= start]
    window = time.monotonic() - start
    assert n >= 1500
    # At least 5 updates, unless the byte budget allows fewer for tables this large.
    allowed = min(5, int(50_000 * window / max(m["bytes"] for m in updates)))
    assert allowed <= len(updates) <= 10 * window + 1, (len(updates), window)
    # Within the byte budget: at most 50 KB per second, plus the one update that opens it.
    assert sum(m["bytes"] for m in updates) <= 50_000 * window + max(m["bytes"] for m in updates)
    # Nothing else in the widget talks while events stream.
    others = [m for m in comm_log if m["time"] >= start and m["comm_id"] != widget._view.model_id]
    assert others == []
    assert widget.received == n and elapsed < 10
    widget.close()


def test_event_widget_byte_budget_spaces_out_large_tables(comm_log: list[dict[str, Any]]) -> None:
    from prefect_nbauth.widgets import EventStreamWidget

    factory = FakeFactory()
    widget = EventStreamWidget(max_rows=200, max_bytes_per_second=20_000, stream_factory=factory)
    stream = factory.streams[0]
    for i in range(200):
        stream.emit(make_event(f"nbauth.big-{i}", "r" * 100, blob="b" * 100))
    wait_until(lambda: "nbauth.big-199" in widget._view.value, 10, "the table")
    largest = max(m["bytes"] for m in updates_of(comm_log, widget._view))
    assert largest > 40_000  # a 200-row table...
    stream.emit(make_event("nbauth.big-next"))
    t0 = time.monotonic()
    wait_until(lambda: "nbauth.big-next" in widget._view.value, 30, "the next update")
    assert time.monotonic() - t0 >= 0.8 * largest / 20_000  # ...waits out its byte budget
    widget.close()


def test_event_widget_pause_resume_clear_and_filters(comm_log: list[dict[str, Any]]) -> None:
    from prefect_nbauth.widgets import EventStreamWidget

    factory = FakeFactory()
    widget = EventStreamWidget(max_rows=5, stream_factory=factory)
    stream = factory.streams[0]
    stream.emit(make_event("nbauth.before-pause"))
    wait_until(lambda: "nbauth.before-pause" in widget._view.value, 5, "the first row")

    widget._pause_button.value = True  # the front end's toggle
    assert widget.paused and widget._pause_button.description == "Resume"
    stream.emit(make_event("nbauth.while-paused"))
    wait_until(lambda: "paused</b> (1 new)" in widget._view.value, 5, "the paused counter")
    assert "nbauth.while-paused" not in widget._view.value  # the table is frozen
    assert widget.rows[0].event == "nbauth.while-paused"  # the buffer is not
    widget.resume()
    wait_until(lambda: "nbauth.while-paused" in widget._view.value, 5, "the rows after resume")

    widget._clear_button.click()
    assert widget.rows == []
    wait_until(lambda: "No events yet." in widget._view.value, 5, "an empty table")

    stream.stats.duplicates, stream.stats.reconciled, stream.stats.last_error = 3, 7, "boom <x>"
    stream.state = "reconnecting"
    stream.on_change(stream)  # type: ignore[misc]
    wait_until(lambda: "duplicates dropped 3" in widget._view.value, 5, "the counters")
    assert "reconciled 7" in widget._view.value and "<b>reconnecting</b>" in widget._view.value
    assert "boom &lt;x&gt;" in widget._view.value

    widget._prefix_field.value = "prefect.flow-run., nbauth.x"
    widget._resource_field.value = ""
    widget._apply_button.click()
    assert stream.stopped.is_set() and len(factory.streams) == 2
    assert factory.streams[1].filters["prefix"] == ["prefect.flow-run.", "nbauth.x"]
    assert factory.streams[1].filters["resource"] is None
    stream.on_event(make_event("nbauth.from-the-old-stream"))  # type: ignore[misc]  # ignored
    assert widget.rows == []
    widget.close()


def test_event_widget_reports_a_stream_that_cannot_start(comm_log: list[dict[str, Any]]) -> None:
    from prefect_nbauth.widgets import EventStreamWidget

    def factory(**filters: Any) -> Any:
        raise RuntimeError("not logged in <anywhere>")

    widget = EventStreamWidget(stream_factory=factory)
    wait_until(lambda: "Could not start" in widget._view.value, 5, "the error")
    assert "not logged in &lt;anywhere&gt;" in widget._view.value
    assert "Could not start the event stream" in repr(widget)
    with pytest.raises(ValueError):
        EventStreamWidget(max_rows=0, stream_factory=factory)
    with pytest.raises(ValueError):
        EventStreamWidget(since=datetime(2025, 1, 1), stream_factory=factory)  # naive
    widget.close()


# --------------------------------------------- against a real Prefect server

SCENARIO_PREAMBLE = """
import json, time
from prefect_nbauth.testing.widgets import all_state_json, front_end_update, install_recording_comm, type_secret
from prefect_nbauth.testing import wait_until
log = install_recording_comm()
import prefect_nbauth as nb
from prefect_nbauth.testing.probes import read_flows_sync, emit
"""


@pytest.mark.server
def test_login_widget_logs_in_and_a_failed_attempt_keeps_the_previous_login(auth_server, run_scenario):
    from constants import AUTH_STRING

    password = AUTH_STRING.split(":", 1)[1]
    result = run_scenario(SCENARIO_PREAMBLE + f"""
from prefect_nbauth.widgets import AuthStatusWidget, LoginWidget
out = {{}}
status_widget = AuthStatusWidget()          # shown in an earlier cell
status_widget.wait_idle(30)
out["status before"] = status_widget.status.mode.value
form = LoginWidget(api_url={auth_server.api_url!r})
type_secret(form.panels['auth-string'].parts['secret'], {AUTH_STRING!r})
t0 = time.perf_counter(); form._button.click(); out["click returned s"] = time.perf_counter() - t0
out["busy right after click"] = form.busy
out["finished"] = form.wait(60)
out["message ok"] = form.message
out["flows after login"] = read_flows_sync()
# The status widget follows the login made in the form, by itself.
wait_until(lambda: status_widget.status.mode.value == "basic", 10, "the status widget to follow")
status_widget.wait_idle(30)
wait_until(lambda: "Prefect 3" in status_widget._summary.value, 10, "the server version")
out["status html"] = status_widget._summary.value
# A wrong password: refused, shown, and the previous login keeps working.
type_secret(form.panels['auth-string'].parts['secret'], "admin@corp:wrong")
form._button.click(); form.wait(60)
out["message wrong"] = form.message
out["flows after failure"] = read_flows_sync()
out["mode after failure"] = nb.status(check_server=False).mode.value
out["error html"] = form._message.value
nb.login({auth_server.api_url!r}, auth_string={AUTH_STRING!r})  # a login made in another cell
out["after login elsewhere"] = [form._message.value, form.error is None]
wait_until(lambda: "via login()" in status_widget._summary.value, 10, "the status widget to follow")
out["status html elsewhere"] = status_widget._summary.value
# The status widget's own buttons.
status_widget._logout_button.click(); status_widget.wait_idle(60)
wait_until(lambda: status_widget.status.mode.value == "none", 10, "logout to show")
out["after logout button"] = [status_widget.message, nb.status(check_server=False).mode.value]
out["state"] = all_state_json(form) + all_state_json(status_widget)
out["messages"] = json.dumps([m["data"] for m in log], default=str)
out["text"] = repr(form) + repr(status_widget)
emit(out)
""", env={"PREFECT_API_URL": auth_server.api_url})
    assert result["status before"] == "none"
    assert result["click returned s"] < 0.5 and result["busy right after click"] is True
    assert result["finished"] is True
    assert result["message ok"].startswith(f"Logged in to {auth_server.api_url} as admin@corp")
    assert "auth string admin@corp:****" in result["message ok"]
    assert result["flows after login"] == 200
    assert 'class="pnb-mode ' in result["status html"] and ">basic<" in result["status html"]
    assert "admin@corp" in result["status html"] and "auth BASIC" in result["status html"]
    assert "via the login form" in result["status html"] and "login()" not in result["status html"]
    assert "via login()" in result["status html elsewhere"]
    assert "AuthenticationError" in result["message wrong"]
    assert "Nothing was changed: the login in force before this attempt is still in use" in result["message wrong"]
    assert result["flows after failure"] == 200 and result["mode after failure"] == "basic"
    assert result["error html"].startswith('<div class="pnb-error"><span class="pnb-lead">The server refused')
    html, cleared = result["after login elsewhere"]
    assert "pnb-error" not in html and "Logged in from elsewhere" in html and cleared
    assert result["after logout button"][1] == "none" and "Logged out" in result["after logout button"][0]
    for where in ("state", "messages", "text"):
        assert password not in result[where], f"the password leaked into {where}"
        assert "p@ss" not in result[where]


@pytest.fixture(scope="module")
def cloud(auth_server):
    from constants import AUTH_STRING

    from prefect_nbauth.testing._cloud import CloudGateway, CloudKey, CloudWorkspace

    prod, dev = CloudWorkspace.new("acme", "prod"), CloudWorkspace.new("acme", "dev")
    keys = [CloudKey(CLOUD_USER_KEY, "user", "marvin", [prod, dev]),
            CloudKey(CLOUD_BOT_KEY, "service_account", "etl-bot", [prod]),
            CloudKey(CLOUD_EXPIRED_KEY, "user", "old", [prod], expired=True)]
    with CloudGateway(auth_server.api_url, upstream_auth_string=AUTH_STRING, keys=keys) as gateway:
        yield gateway


CLOUD_USER_KEY = "pnu_" + "w" * 8 + "CANARYwidgetuser0123"
CLOUD_BOT_KEY = "pnb_" + "w" * 8 + "CANARYwidgetbot01234"
CLOUD_EXPIRED_KEY = "pnu_" + "w" * 8 + "CANARYwidgetold01234"


@pytest.mark.server
def test_cloud_key_with_several_workspaces_gets_a_chooser(cloud, run_scenario):
    result = run_scenario(SCENARIO_PREAMBLE + f"""
from prefect_nbauth.widgets import LoginWidget
out = {{}}
form = LoginWidget(mode="api-key")
type_secret(form.panels['api-key'].parts['secret'], {CLOUD_USER_KEY!r})
form._button.click(); form.wait(60)
out["chooser"] = [form.panels['api-key'].parts['workspace'].layout.display, list(form.panels['api-key'].parts['workspace'].options), form.message]
out["mode before choosing"] = nb.status(check_server=False).mode.value
form._button.click()
out["must choose"] = form.message
front_end_update(form.panels['api-key'].parts['workspace'], index=list(form.panels['api-key'].parts['workspace'].options).index("acme/prod"))
form._button.click(); form.wait(60)
out["chosen"] = [form.message, nb.status(check_server=False).workspace, read_flows_sync()]
bot = LoginWidget(mode="api-key")
type_secret(bot.panels['api-key'].parts['secret'], {CLOUD_BOT_KEY!r})
bot._button.click(); bot.wait(60)
out["bot"] = [bot.message, bot.panels['api-key'].parts['workspace'].layout.display]
old = LoginWidget(mode="api-key")
type_secret(old.panels['api-key'].parts['secret'], {CLOUD_EXPIRED_KEY!r})
old._button.click(); old.wait(60)
out["expired"] = [old.message, nb.status(check_server=False).identity]
out["leaks"] = all_state_json(form) + all_state_json(bot) + all_state_json(old) + json.dumps(
    [m["data"] for m in log], default=str) + out["chosen"][0] + out["bot"][0] + out["expired"][0]
emit(out)
""", env={"PREFECT_CLOUD_API_URL": cloud.api_url})
    display, options, message = result["chooser"]
    assert display is None and options == ["acme/dev", "acme/prod"]
    assert "can use 2 workspaces" in message and result["mode before choosing"] == "none"
    assert "Choose a workspace" in result["must choose"]
    message, workspace, flows = result["chosen"]
    assert "marvin" in message and "(workspace acme/prod)" in message and "pnu_****0123" in message
    assert workspace == "acme/prod" and flows == 200
    assert "etl-bot" in result["bot"][0] and result["bot"][1] == "none"  # one workspace: no chooser
    assert "AuthenticationError" in result["expired"][0] and "etl-bot" in result["expired"][1]
    for key in (CLOUD_USER_KEY, CLOUD_BOT_KEY, CLOUD_EXPIRED_KEY):
        assert key not in result["leaks"] and key[8:] not in result["leaks"]


def test_event_widget_restarts_after_a_login_when_it_could_not_start(comm_log: list[dict[str, Any]]) -> None:
    from prefect_nbauth.session import _listeners
    from prefect_nbauth.widgets import EventStreamWidget

    fake = FakeFactory()
    calls: list[dict[str, Any]] = []

    def factory(**filters: Any) -> Any:
        calls.append(filters)
        if len(calls) == 1:
            raise RuntimeError("No Prefect API URL is in force")
        return fake(**filters)

    widget = EventStreamWidget(prefix="nbauth.", stream_factory=factory)
    assert widget.stream is None and "No Prefect API URL" in repr(widget)
    _listeners.notify("login")  # as login() does after login()
    wait_until(lambda: widget.stream is not None, 10, "the stream to restart after the login")
    assert calls[1]["prefix"] == ["nbauth."]
    wait_until(lambda: "<b>connected</b>" in widget._view.value, 5, "the restarted stream's state")
    widget.stop()
    _listeners.notify("logout")  # a stream stopped on purpose stays stopped
    widget.close()
    assert len(calls) == 2
