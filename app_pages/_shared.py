"""The page kit: what every dashboard page uses, so all pages look and behave alike.

It lives beside the pages (``app_pages/_shared.py``, the leading underscore marks it as not a page) so
that Streamlit code stays in ``streamlit_app.py`` and ``app_pages/`` only. A page uses it like this::

    from app_pages import _shared as ui

    ui.page_header("Attack", "Find the few pixels that flip a prediction.")
    run = ui.require_active_run()                     # the model chosen in the sidebar
    with ui.guard():                                  # NnkitError → one-line st.error, page stops
        ...one call into the library...
    job_id = ui.submit_job(my_job_fn, kind="attack", title="Attack cnn", slot="attack", **kwargs)
    ui.job_panel(ui.current_job("attack"), key="attack", figure=my_figure_builder)

Contents: the browser owner id, the sidebar (device, active model, your jobs), the page header,
the error guard, background-job helpers and the live job panel, download buttons.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import secrets
import time
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import streamlit as st

from nnkit.errors import NnkitError
from nnkit.jobs import JobStatus, JobView, get_manager, one_line
from nnkit.runs import RunInfo, RunStore, safe_text

log = logging.getLogger("nnkit.app")

POLL_SECONDS = 1.5  # how often a job panel refreshes while its job runs (the sidebar: half as often)
FIGURE_SECONDS = 3.0  # a live figure is rebuilt at most this often: building one costs ~20-50 ms of CPU
_OWNER_KEY = "nnkit_owner"  # session-state key and cookie name of the browser's owner id
_ACTIVE_KEY = "nnkit_active_run"  # session-state key of the sidebar's active-model selectbox
_PENDING_ACTIVE = "nnkit_active_run_next"  # set by a page; applied before the selectbox is drawn
_JOBS_KEY = "nnkit_jobs"  # slot -> job id of the jobs this session started
_DONE_KEY = "nnkit_jobs_seen_done"  # job ids whose on_done callback already ran in this session
_LIVE_KEY = "nnkit_jobs_seen_live"  # job ids this session has seen queued or running


# -- who is looking -----------------------------------------------------------------------------
def owner_id() -> str:
    """This browser's owner id: jobs are listed per owner, so users do not see each other's work.

    The id lives in a cookie (set by a tiny script on the first visit), so a refresh or a second tab
    of the same browser finds its running jobs again; without cookies it lasts for the session.
    """
    if _OWNER_KEY not in st.session_state:
        cookie = st.context.cookies.get(_OWNER_KEY) if st.context.cookies else None
        if cookie and re.fullmatch(r"[0-9a-f]{32}", cookie):
            st.session_state[_OWNER_KEY] = cookie
        else:
            st.session_state[_OWNER_KEY] = secrets.token_hex(16)
            st.session_state[_OWNER_KEY + "_new"] = True
    return st.session_state[_OWNER_KEY]


def _set_owner_cookie() -> None:
    if st.session_state.get(_OWNER_KEY + "_new"):
        # The id is 32 hex digits we made ourselves, so it is safe to put into the script.
        st.html(f"<script>document.cookie = '{_OWNER_KEY}={owner_id()}; path=/; max-age=31536000; "
                "SameSite=Strict';</script>", unsafe_allow_javascript=True)


# -- errors -------------------------------------------------------------------------------------
def show_error(exc: BaseException) -> None:
    """One-line ``st.error`` for an exception: the message of an NnkitError, type and message otherwise."""
    if isinstance(exc, NnkitError):
        st.error(one_line(exc), icon=":material/error:")
    else:
        log.error("unexpected error in the dashboard", exc_info=exc)
        st.error(f"Something went wrong: {one_line(f'{type(exc).__name__}: {exc}')} (details in the server log)",
                 icon=":material/bug_report:")


@contextlib.contextmanager
def guard(stop: bool = True) -> Iterator[None]:
    """Show an NnkitError (bad input, missing file, ...) as one ``st.error`` line, never a traceback.

    Args:
        stop: stop the rest of the page (or fragment) after the error; False carries on below the block.
    """
    try:
        yield
    except NnkitError as exc:
        show_error(exc)
        if stop:
            st.stop()


def run_page(page) -> None:
    """Run the selected page; any error it lets through becomes one ``st.error`` line."""
    try:
        page.run()
    except Exception as exc:  # Streamlit's stop/rerun signals are BaseExceptions and pass through
        show_error(exc)


# -- page layout --------------------------------------------------------------------------------
def page_header(title: str, why: str) -> None:
    """The page title and one line that says why the page exists."""
    st.title(title)
    st.caption(why)


# -- runs and the active model ------------------------------------------------------------------
# The characters that make Markdown or Streamlit syntax inside one line: links and images ([ ] ! <), emphasis
# (* _ ~), code (`), LaTeX ($), directives (:red[..]) and HTML (< >); '.' and ':' too, which breaks bare-URL
# autolinks (www.x.org, http://x). Parentheses, hyphens and quotes stay as they are: alone they are plain text.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|~$!:.])")


def md(text: Any) -> str:
    """``text`` escaped for the Markdown in ``st.markdown``, captions, info boxes, radio options and job titles.

    Run names come from every user of a shared store: shown through this, a name such as
    ``[click](http://x)`` or ``![](http://x/y.png)`` is plain text, never a link or an image.

    Args:
        text: any value (control characters are escaped too, see ``nnkit.runs.safe_text``).

    Returns:
        The Markdown source that renders as exactly ``text``.
    """
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", safe_text(text))
    return "\\" + escaped if escaped[:1] in ("-", "+", "=") else escaped  # a list or heading marker at the start


def store_runs(kind: str | None = None) -> list[RunInfo]:
    """Complete runs in the store (only those of ``kind`` if given), newest first.

    Broken runs are left out without a warning here: the sidebar names them once per page.
    """
    runs, _ = RunStore().scan()
    return [r for r in runs if kind is None or r.kind == kind]


def classifier_runs() -> list[RunInfo]:
    """Complete classifier runs in the store, newest first."""
    return store_runs("classifier")


def run_label(run: RunInfo) -> str:
    """One short plain-text line naming a run: name (or id), dataset, model, defence if any, test accuracy.

    For widget options and tables (plain text); put it through ``md`` where it goes into Markdown.
    """
    from nnkit.training.adversarial import defence_tag

    meta = run.meta
    acc = meta.get("test_accuracy")
    parts = [run.label, meta.get("dataset", {}).get("name", "?"), meta.get("model", {}).get("name", "?")]
    if meta.get("defence"):  # an adversarially trained model says so wherever it is listed
        parts.append(defence_tag(meta["defence"]))
    text = " · ".join(safe_text(p) for p in parts)
    return f"{text} · {acc:.1%}" if isinstance(acc, float) else text


def model_runs() -> list[RunInfo]:
    """The classifier runs that can be the Active model, newest first: auxiliary models (a GAN's judge) never are."""
    from nnkit.gan.train import is_judge_run

    return [r for r in classifier_runs() if not is_judge_run(r)]


def set_active_run(run_id: str) -> None:
    """Make ``run_id`` the sidebar's active model (applied on the next script run)."""
    st.session_state[_PENDING_ACTIVE] = run_id


def active_run() -> RunInfo | None:
    """The run chosen as the active model in the sidebar (None when the store has no classifier)."""
    run_id = st.session_state.get(_ACTIVE_KEY)
    if run_id is None:
        runs = model_runs()
        return runs[0] if runs else None
    try:
        return RunStore().get(run_id)
    except NnkitError:
        return None


def require_active_run() -> RunInfo:
    """The active model, or an info box pointing to Home/Train and a stop of the page."""
    run = active_run()
    if run is None:
        st.info("No trained model yet: run **Quick start** on Home or train one on **Train**.",
                icon=":material/info:")
        st.stop()
    return run


# -- datasets -----------------------------------------------------------------------------------
# Builder options the pages offer, by option name: (label, minimum, maximum, step). A dataset gets the
# widgets for the options its builder takes, so a new dataset with these option names needs no page change.
DATASET_OPTIONS: dict[str, tuple[str, float, float, float]] = {
    "n_train": ("Training images", 100, 100_000, 500),
    "n_test": ("Test images", 100, 20_000, 500),
    "seed": ("Seed", 0, 2**31 - 1, 1),
    "tag_fraction": ("Share of tagged training images", 0.0, 1.0, 0.05),
    "limit": ("Images per split (0: all)", 0, 100_000, 500),
    # A folder infers its size and channels from the images (nnkit.data.folder): 0 keeps that.
    "size": ("Image size (pixels; 0: from the images)", 0, 512, 4),
    "channels": ("Channels (1 grey, 3 colour; 0: from the images)", 0, 3, 1),
}


def dataset_choices() -> list[str]:
    """The registered datasets, then the uploaded ones (``folder:PATH``)."""
    from nnkit.data import list_datasets
    from nnkit.data.upload import list_uploads

    return [d.name for d in list_datasets()] + list_uploads()


def dataset_label(name: str) -> str:
    """A short label: the registry name, or ``upload: <folder>`` for an uploaded folder."""
    from pathlib import Path

    from nnkit.data import FOLDER_PREFIX

    return f"upload: {Path(name[len(FOLDER_PREFIX):]).name}" if name.startswith(FOLDER_PREFIX) else name


def dataset_select(key: str, label: str = "Dataset") -> str:
    """A dataset selectbox (outside a form, so the options below it follow the choice).

    ``select_dataset_next(key, name)`` before the page's next run chooses ``name``.
    """
    names = dataset_choices()
    pending = st.session_state.pop(f"{key}_next", None)
    if pending in names:
        st.session_state[key] = pending
    elif st.session_state.get(key) not in names:
        st.session_state.pop(key, None)
    from nnkit.data import list_datasets

    descriptions = {d.name: d.description for d in list_datasets()}
    return st.selectbox(label, names, key=key, format_func=dataset_label,
                        help="; ".join(f"{n}: {d}" for n, d in descriptions.items()))


def select_dataset_next(key: str, name: str) -> None:
    """Choose ``name`` in the ``dataset_select`` of ``key`` from the next script run on."""
    st.session_state[f"{key}_next"] = name


def dataset_options(name: str, key: str, columns: int = 3) -> dict:
    """Widgets for the dataset's builder options; returns only the values that differ from the defaults.

    Only changed values are returned so that default datasets share the in-process dataset cache with
    every other job (the quick start's ``shapes`` is the Data page's ``shapes``).
    """
    import inspect

    from nnkit.data import FOLDER_PREFIX, list_datasets
    from nnkit.data.folder import build_folder

    builder = build_folder if name.startswith(FOLDER_PREFIX) else {d.name: d.builder for d in list_datasets()}[name]
    params = inspect.signature(builder).parameters
    shown = [(opt, params[opt].default) for opt in DATASET_OPTIONS if opt in params]
    cols = st.columns(columns) if shown else []
    opts = {}
    for i, (opt, default) in enumerate(shown):
        label, lo, hi, step = DATASET_OPTIONS[opt]
        start = 0 if default is None else default
        if isinstance(step, float):
            value = cols[i % columns].number_input(label, float(lo), float(hi), float(start), float(step),
                                                   key=f"{key}_{opt}")
        else:
            value = cols[i % columns].number_input(label, int(lo), int(hi), int(start), int(step), key=f"{key}_{opt}")
        if default is None and value == 0:
            continue  # 0 stands for "no limit" (limit) or "from the images" (a folder's size, channels)
        if value != default:
            opts[opt] = value
    return opts


# -- background jobs ----------------------------------------------------------------------------
def submit_job(fn: Callable[..., Any], *, kind: str, title: str, slot: str | None = None,
               device: str | None = None, heavy: bool = True, **kwargs) -> str:
    """Start ``fn(ctx, **kwargs)`` as a background job owned by this browser.

    Args:
        fn: the job function (see ``nnkit.jobs``): first argument the JobContext; pass
            ``ctx.stop_event`` and ``ctx.device`` on to the library call.
        kind, title: shown in the sidebar.
        slot: remember the job under this name for ``current_job(slot)`` (default: ``kind``).
        device: "cpu", "cuda", "mps"; None for ``$NNKIT_DEVICE`` or the best available.
        heavy: heavy jobs wait for their device; light ones start at once.

    Returns:
        The job id.
    """
    slot = slot or kind
    job_id = get_manager().submit(fn, kind=kind, title=title, owner=owner_id(), tag=slot, device=device,
                                  heavy=heavy, **kwargs)
    st.session_state.setdefault(_JOBS_KEY, {})[slot] = job_id
    st.session_state.setdefault(_LIVE_KEY, set()).add(job_id)  # its on_done fires even if it ends at once
    return job_id


def current_job(slot: str) -> str | None:
    """The job this page should show for ``slot``: the one started in this session, else this
    browser's newest job of that kind (so a refresh or a second tab re-attaches)."""
    job_id = st.session_state.get(_JOBS_KEY, {}).get(slot)
    if job_id is not None:
        try:
            get_manager().get(job_id, owner=owner_id())
            return job_id
        except NnkitError:
            pass
    jobs = get_manager().list(owner=owner_id(), tag=slot)
    return jobs[0].id if jobs else None


def has_active_job(slot: str) -> bool:
    """Whether this browser has a queued or running job in ``slot``."""
    job_id = current_job(slot)
    return job_id is not None and get_manager().get(job_id).active


def job_panel(job_id: str | None, *, key: str,
              figure: Callable[[list[dict]], Any] | None = None,
              on_done: Callable[[JobView], None] | None = None,
              figure_when_done: bool = True) -> JobView | None:
    """Live view of one job: progress bar, message, live plotly figure of its metrics, Cancel.

    While the job is queued or running the panel re-draws itself every ``POLL_SECONDS`` (a
    ``st.fragment``), so the rest of the page stays usable; when the job ends it re-runs the whole
    page once, so the page can show the result.

    Args:
        job_id: the job (None draws nothing).
        key: unique per panel on a page.
        figure: builds a plotly figure from the job's metrics list (e.g. ``nnkit.plots.training.training_curves``).
        figure_when_done: keep the figure once the job has ended (False where the page shows the
            finished result itself, e.g. Train's result section).
        on_done: called once with the finished JobView when a job this session saw running is done
            (e.g. to make its run the active model); not for jobs that had ended before the page opened.

    Returns:
        The job's snapshot when the page was drawn (None when there is no job).
    """
    if job_id is None:
        return None
    try:
        view = get_manager().get(job_id, owner=owner_id())
    except NnkitError:
        return None
    polling = view.active
    live = st.session_state.setdefault(_LIVE_KEY, set())
    if polling:
        live.add(job_id)

    @st.fragment(run_every=POLL_SECONDS if polling else None)
    def panel() -> None:
        try:
            v = get_manager().get(job_id, owner=owner_id())
            _draw_job(v, key, figure if (v.active or figure_when_done) else None)
            if polling and not v.active:
                st.rerun()  # the job just ended: re-run the page once to show its result
        except NnkitError as exc:
            show_error(exc)

    panel()
    if view.status is JobStatus.DONE and on_done is not None and job_id in live:
        seen = st.session_state.setdefault(_DONE_KEY, set())
        if job_id not in seen:
            seen.add(job_id)
            on_done(view)
            st.rerun()  # the sidebar was drawn before this page: redraw it with what on_done changed
    return view


_STATUS_ICON = {JobStatus.QUEUED: ":material/hourglass_top:", JobStatus.RUNNING: ":material/sync:",
                JobStatus.DONE: ":material/check_circle:", JobStatus.FAILED: ":material/error:",
                JobStatus.CANCELLED: ":material/cancel:"}


def _draw_job(v: JobView, key: str, figure: Callable[[list[dict]], Any] | None) -> None:
    with st.container(border=True):
        left, right = st.columns([5, 1], vertical_alignment="center")
        seconds = f" · {v.seconds:.0f} s" if v.seconds is not None else ""
        left.markdown(f"{_STATUS_ICON[v.status]} **{md(v.title)}** · {v.status.value}{seconds}")
        if v.active:
            right.button("Cancel", key=f"{key}-cancel-{v.id}", icon=":material/stop_circle:",
                         disabled=v.cancel_requested, on_click=_cancel, args=(v.id,), width="stretch")
            st.progress(v.progress, text=_with_eta(v))
        elif v.status is JobStatus.DONE:
            st.success(v.message, icon=":material/check_circle:")
        elif v.status is JobStatus.FAILED:
            st.error(v.error or v.message, icon=":material/error:")
        else:
            st.warning("Cancelled: nothing was saved.", icon=":material/cancel:")
        for warning in v.warnings:  # e.g. the run's folder changed since training: the figures are not its data's
            st.warning(md(warning), icon=":material/warning:")
        if figure is not None and (v.metrics or v.active):
            st.plotly_chart(_live_figure(v, key, figure), key=f"{key}-chart-{v.id}", config={"displaylogo": False})


def _with_eta(v: JobView) -> str:
    # The ETA is measured from this job's own progress over the last few seconds, so it follows the
    # load on this machine; before the first measurement the bar says only what the job is doing.
    eta = v.eta.text() if v.eta is not None else ""
    return f"{v.message} · {eta}" if eta else v.message


def estimate_note(kind: str, slot: str | None = None, what: str = "job", total: float | None = None) -> str:
    """What the next job can expect, from the last job of its kind measured on this machine.

    Args:
        kind: the job kind ("train", "attack", ...).
        slot: the page slot (e.g. "quick-start"): a job in the same slot is the closest match.
        what: how the page names that kind of job ("training", "quick start").
        total: the units the next job will do, when the page knows (then the time is estimated too).

    Returns:
        One plain line, e.g. "Based on the last quick start here: 14 steps/s, 471 steps in 38 s." or,
        when none ran here yet, a line saying the estimate appears once the job runs.
    """
    from nnkit.jobs.eta import format_rate, format_seconds, last_rate

    last = last_rate(*([f"{kind}/{slot}"] if slot else []), kind)
    if last is None:
        return (f"No {what} has run on this machine yet: once it starts, its bar shows the rate it measures "
                "and the time left.")
    if not last["unit"]:  # a job that reports no units: its whole running time is what was measured
        return (f"The last {what} here took {format_seconds(last['seconds'])}, when the machine was as busy as "
                "then; the bar shows the live time left.")
    rate = format_rate(last["rate"], last["unit"])
    if total is not None:
        return (f"Based on the last {what} here ({rate}), {total:,.0f} {last['unit']} take about "
                f"{format_seconds(total / last['rate'])} if the machine is as busy as it was then.")
    return (f"Based on the last {what} here: {rate}, {last['total']:,.0f} {last['unit']} in "
            f"{format_seconds(last['seconds'])} in all, when the machine was as busy as then; "
            "the bar shows the live rate.")


def _live_figure(v: JobView, key: str, figure: Callable[[list[dict]], Any]):
    # Rebuild the figure only when new metrics arrived and FIGURE_SECONDS passed (or the job ended):
    # the CPU a live chart costs is CPU the training on the same cores does not get. An unchanged
    # figure is also not re-sent to the browser (Streamlit skips identical messages).
    cache = st.session_state.setdefault("nnkit_live_figures", {})
    old = cache.get(key)
    n, now = len(v.metrics), time.monotonic()
    if old is None or old[0] != v.id or (old[1] != n and (now - old[2] >= FIGURE_SECONDS or not v.active)):
        cache[key] = (v.id, n, now, figure(list(v.metrics)))
    return cache[key][3]


def _cancel(job_id: str) -> None:
    try:
        get_manager().cancel(job_id, owner=owner_id())
    except NnkitError as exc:
        show_error(exc)


# -- sidebar ------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False)
def _device_text() -> str:
    from nnkit.device import describe_device

    return describe_device()


def render_sidebar() -> None:
    """Device, active model (a run from the store) and this browser's jobs with live progress."""
    owner_id()
    with st.sidebar:
        _set_owner_cookie()
        with guard(stop=False):
            st.caption(f":material/memory: {_device_text()}")
        try:
            _sidebar_runs()
        except Exception as exc:  # an unreadable store shows one line here; the page below still runs
            show_error(exc)
        _sidebar_jobs()


def _sidebar_runs() -> None:
    runs, broken = RunStore().scan()
    if broken:
        st.warning(f"Skipped {len(broken)} broken run{'s' * (len(broken) != 1)} in the store: "
                   + "; ".join(f"{md(folder)} ({md(problem)})" for folder, problem in sorted(broken.items())),
                   icon=":material/warning:")
    from nnkit.gan.train import is_judge_run

    # A GAN's judge is an auxiliary model: it is chosen on the GAN page, never offered as the Active one (issue 17)
    runs = [r for r in runs if r.kind == "classifier" and not is_judge_run(r)]
    pending = st.session_state.pop(_PENDING_ACTIVE, None)
    ids = [r.run_id for r in runs]
    if pending in ids:
        st.session_state[_ACTIVE_KEY] = pending
    elif st.session_state.get(_ACTIVE_KEY) not in ids:
        st.session_state.pop(_ACTIVE_KEY, None)
    if runs:
        labels = {r.run_id: run_label(r) for r in runs}
        st.selectbox("Active model", ids, key=_ACTIVE_KEY, format_func=labels.get,
                     help="The trained model the Attack, Explain and Report pages work on.")
    else:
        st.caption("No trained model yet: run Quick start on Home.")


def _sidebar_jobs() -> None:
    mgr = get_manager()
    polling = bool(mgr.list(owner=owner_id(), active=True))

    @st.fragment(run_every=POLL_SECONDS * 2 if polling else None)
    def jobs() -> None:
        mine = mgr.list(owner=owner_id())
        active = [j for j in mine if j.active]
        recent = [j for j in mine if not j.active and j.finished and time.time() - j.finished < 600][:3]
        if active or recent:
            st.markdown("**Jobs**")
        for j in active:
            st.progress(j.progress, text=md(f"{j.title}: {j.message}"))
        for j in recent:
            st.caption(f"{_STATUS_ICON[j.status]} {md(f'{j.title}: {j.error or j.message}')}")
        lanes = {j.lane for j in active}
        for lane in sorted(lanes):
            others = mgr.lane_load(lane, exclude_owner=owner_id())
            if others:
                st.caption(f":material/group: {others} job{'s' * (others != 1)} of other users on {lane}")
        if polling and not active:
            st.rerun()  # the last job ended: redraw the page (new run in the active-model list)

    jobs()


# -- downloads ----------------------------------------------------------------------------------
def _zip_folder(run: RunInfo) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(run.path.rglob("*")):
            if f.is_file():
                zf.write(f, f"{run.run_id}/{f.relative_to(run.path)}")
    return buf.getvalue()


def download_run(run: RunInfo, key: str) -> None:
    """Download buttons for a run: weights (safetensors), config and meta JSON, the whole run as zip."""
    cols = st.columns(4)
    files = [("Weights", "model.safetensors", "application/octet-stream"),
             ("Config", "config.json", "application/json"), ("Meta", "meta.json", "application/json")]
    for col, (label, name, mime) in zip(cols, files):
        path = run.path / name
        if path.is_file():
            col.download_button(label, data=path.read_bytes, file_name=f"{run.run_id}-{name}", mime=mime,
                                key=f"{key}-{name}", icon=":material/download:", on_click="ignore", width="stretch")
    cols[3].download_button("Whole run (zip)", data=lambda: _zip_folder(run), file_name=f"{run.run_id}.zip",
                            mime="application/zip", key=f"{key}-zip", icon=":material/folder_zip:",
                            on_click="ignore", width="stretch")


def download_figure(fig, file_name: str, key: str, label: str = "Figure (HTML)") -> None:
    """A download button for a plotly figure as a self-contained interactive HTML file (works offline)."""
    st.download_button(label, data=lambda: fig.to_html(include_plotlyjs=True, full_html=True),
                       file_name=file_name, mime="text/html", key=key, icon=":material/download:",
                       on_click="ignore")


def download_json(obj: Any, file_name: str, key: str, label: str = "JSON") -> None:
    """A download button for a JSON-serialisable object (NaN and infinities written as null)."""
    from nnkit.jsonable import json_ready

    st.download_button(label, data=lambda: json.dumps(json_ready(obj), indent=2, allow_nan=False), file_name=file_name,
                       mime="application/json", key=key, icon=":material/download:", on_click="ignore")
