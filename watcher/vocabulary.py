"""Words that the command line, the HTTP API and its OpenAPI document all offer, kept
apart from the code that acts on them: this module imports nothing, so that the
command line's grammar (`watcher.arguments`) names them without loading that code."""

# The rule match keys a silence may use (SPEC "People in the loop").
SILENCE_KEYS = ("template", "name", "type", "run_type", "started_by", "account", "event", "to")

# Where an alert stands. waiting: held for the rerun of its failed job; flaky and
# replaced: not sent, by the rerun's end (see `flakes`).
ALERT_STATES = (
    "pending",
    "sent",
    "given_up",
    "resolved",
    "silenced",
    "acked",
    "waiting",
    "flaky",
    "replaced",
)
