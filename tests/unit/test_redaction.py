"""Log lines from any library never carry a logged-in credential (run in a subprocess:
the log-record factory is process-global)."""

from __future__ import annotations

CANARY = "nbuser:CANARY-redaction-7f3e"


def test_records_from_any_logger_are_scrubbed(run_scenario):
    result = run_scenario(
        f"""
        import base64, io, logging
        from prefect_nbauth import _redaction
        from prefect_nbauth.testing.probes import emit
        stream = io.StringIO()
        logging.basicConfig(stream=stream, level=logging.DEBUG, force=True)
        secret = {CANARY!r}
        basic = base64.b64encode(secret.encode()).decode()
        _redaction.remember_secret(secret)
        logging.getLogger("websockets.client").debug("> Authorization: Basic %s", basic)
        logging.getLogger("prefect.events.clients").debug('{{"type": "auth", "token": "%s"}}', secret)
        logging.getLogger("anything").info("plain " + secret)
        try:
            raise RuntimeError("failed for " + secret)
        except RuntimeError:
            logging.getLogger("anything").exception("boom")
        logging.getLogger("anything").info("unrelated %s", 42)
        emit(stream.getvalue())
        """
    )
    assert "CANARY-redaction" not in result
    assert "bnVzZXI6Q0FOQVJZLXJlZGFjdGlvbi03ZjNl" not in result  # base64 of the canary
    assert "unrelated 42" in result and "RuntimeError" in result and result.count("****") >= 4
