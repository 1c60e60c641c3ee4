"""Helpers shared by the dashboard's AppTest files: no error on the page, wait for a page's job."""

from __future__ import annotations


def ok(at) -> None:
    """The page drew no exception and no ``st.error``."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def finish(at, slot: str):
    """Wait for this session's newest job in ``slot`` and redraw the page with its result."""
    from nnkit.jobs import JobStatus, get_manager

    jobs = get_manager().list(owner=at.session_state["nnkit_owner"], tag=slot)
    assert jobs, f"no {slot} job was submitted"
    view = get_manager().wait(jobs[0].id, 120)
    assert view.status is JobStatus.DONE, view.error
    at.run()
    ok(at)
    return view
