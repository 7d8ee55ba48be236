"""What the Distillation page keeps per server and per tab: the job queue, the tab's
session id, and the form's starting values."""

from __future__ import annotations

import json
import os
import uuid

import streamlit as st

from optical_core.distill.config import DistillConfig
from optical_core.distill.jobs import JobManager

#: A JSON object of DistillConfig fields that overrides the form's starting values.
ENV_DEFAULTS = "OPTICAL_DISTILL_DEFAULTS"


@st.cache_resource(show_spinner=False)
def job_manager(orphan_s: float | None) -> JobManager:
    """One job queue per server process, shared by every tab (the grace period is part
    of the key only so that tests can set it through the environment)."""
    return JobManager(orphan_s=orphan_s)


def session_id() -> str:
    """This tab's id: the owner of the jobs it starts."""
    if "distill_session_id" not in st.session_state:
        st.session_state["distill_session_id"] = uuid.uuid4().hex
    return st.session_state["distill_session_id"]


def form_defaults() -> DistillConfig:
    """The default config with ``$OPTICAL_DISTILL_DEFAULTS`` applied (a warning if invalid)."""
    cfg = DistillConfig()
    raw = os.environ.get(ENV_DEFAULTS)
    if raw:
        try:
            cfg = DistillConfig.from_dict({**cfg.to_dict(), **json.loads(raw)})
        except (ValueError, TypeError) as exc:
            st.warning(f"{ENV_DEFAULTS} is not a valid JSON config ({exc}); using the defaults.")
    return cfg
