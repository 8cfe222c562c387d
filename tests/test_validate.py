"""The hindcast scorer (``sim.validate``) on hand-made runs: no model runs needed.

A fake run is a :class:`~sim.results.Results` on a coarse 0.5° grid over the real bounding box,
with a control history and a time series written by hand, so every score has an exact
expected value: a capture one week late scores 1, a year late 0, months early is penalised;
rows that cannot be evaluated are listed, excluded from the score and counted.
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from sim import history, validate
from sim.grid import GridSpec
from sim.results import Results

START = dt.date(2017, 7, 1)
FACTIONS = ["ISIS", "SDF", "SYRIAN_GOV"]
GRID = GridSpec(lon_min=34.0, lon_max=49.0, lat_min=28.0, lat_max=38.0, res=0.5)  # 20 x 30
CP_LAT, CP_LON = 35.95, 39.0  # Raqqa: row 4, col 10
CP_DATE = dt.date(2018, 1, 6)  # step 27


class _Places:
    def find(self, name):
        raise KeyError(name)


def fake_geo():
    shape = GRID.shape
    theatre = np.ones(shape, bool)
    lake = np.zeros(shape, bool)
    theatre[0:5, 0:5] = False  # a lake in the north-west corner
    lake[0:5, 0:5] = True
    theatre[15:, 25:] = False  # abroad in the south-east corner
    return SimpleNamespace(grid=GRID, shape=shape, theatre=theatre, lake=lake, places=_Places())


def step_of(date) -> int:
    return (pd.Timestamp(date) - pd.Timestamp(START)).days // 7


def fake_run(weeks: int = 104, capture_step: int | None = None, metrics: dict | None = None) -> Results:
    """ISIS holds everything; SDF takes the checkpoint's cell at ``capture_step`` and keeps it."""
    geo = fake_geo()
    dates = [np.datetime64(START + dt.timedelta(weeks=k), "D") for k in range(weeks + 1)]
    control = np.zeros((weeks + 1, *geo.shape), np.int8)
    control[:, ~geo.theatre] = -2
    r, c = (int(x) for x in GRID.rowcol(CP_LAT, CP_LON))
    if capture_step is not None:
        control[capture_step:, r, c] = FACTIONS.index("SDF")
    rows = []
    share = np.linspace(0.3, 0.0, weeks + 1)
    for k in range(weeks + 1):
        rows.append((k, "share_territory_area", "ISIS", float(share[k])))
        rows.append((k, "new_insurgent_attacks", "ALL", 1.0))
        for name, fn in (metrics or {}).items():
            m, f = name if isinstance(name, tuple) else (name, "ALL")
            rows.append((k, m, f, float(fn(k))))
    steps = np.array([x[0] for x in rows])
    ts = pd.DataFrame({"date": np.array(dates, dtype="datetime64[ns]")[steps], "step": steps,
                       "metric": [x[1] for x in rows], "faction": [x[2] for x in rows],
                       "value": [x[3] for x in rows]})
    z = np.zeros_like(control)
    return Results(factions=FACTIONS, colours={}, dates=dates, timeseries=ts, control=control,
                   control_level=z, damage=z.astype(np.float32), summary={}, config={}, geo=geo)


def cp(date=CP_DATE, lat=CP_LAT, lon=CP_LON, to="SDF", problem="", place="Raqqa"):
    return validate.Checkpoint(date, place, lat, lon, "ISIS", to, "hand:1", problem)


def only_checkpoints(runs, cps):
    return validate.scorecard(runs, cps, facts_path=None)


# ------------------------------------------------------------------------------ kernels
def test_timing_kernel_is_documented_shape():
    k = validate.timing_kernel
    assert k(0) == k(1) == k(4) == k(-4) == 1.0
    assert k(15) == pytest.approx(0.5)  # half-way between 4 and 26 weeks
    assert k(26) == k(52) == k(float("inf")) == 0.0
    assert validate.ratio_kernel(110, 100) == 1.0 and validate.ratio_kernel(200, 100) == 0.0
    assert validate.ratio_kernel(50, 100) == 0.0 and 0 < validate.ratio_kernel(150, 100) < 1
    assert validate.points_kernel(99.5, 100) == 1.0 and validate.points_kernel(85, 100) == 0.0


# ------------------------------------------------------------------------------ checkpoints
def test_one_week_late_scores_full_marks():
    run = fake_run(capture_step=step_of(CP_DATE) + 1)
    df = only_checkpoints([run], [cp()])
    row = df[df.kind == "checkpoint"].iloc[0]
    assert row.status == "ok"
    assert row.error_weeks == pytest.approx(1.0, abs=0.2)
    assert row.timing_score == 1.0 and row.hold_score == 1.0 and row.score == 1.0


def test_a_year_late_scores_zero():
    run = fake_run(capture_step=step_of(CP_DATE) + 52)
    row = only_checkpoints([run], [cp()]).iloc[0]
    assert row.error_weeks == pytest.approx(52, abs=0.2)
    assert row.timing_score == 0.0 and row.hold_score == 0.0 and row.score == 0.0


def test_capture_months_early_that_holds_is_penalised():
    early = step_of(CP_DATE) - 22  # about five months early, then held throughout
    run = fake_run(capture_step=early)
    row = only_checkpoints([run], [cp()]).iloc[0]
    assert row.hold_score == 1.0  # the old "held in the window" score would have given 1
    assert row.error_weeks == pytest.approx(22, abs=0.2)
    assert row.score == pytest.approx(validate.timing_kernel(row.error_weeks)) and row.score < 0.25
    held, timing, _ = validate.checkpoint_match(run, cp())
    assert held and not timing


def test_never_captured_scores_zero_with_infinite_error():
    row = only_checkpoints([fake_run()], [cp()]).iloc[0]
    assert row.score == 0.0 and np.isinf(row.error_weeks) and row.model_date == "never"


def test_ensemble_mean_and_median_error():
    d = step_of(CP_DATE)
    runs = [fake_run(capture_step=d + 1), fake_run(capture_step=d + 52)]
    df = only_checkpoints(runs, [cp()])
    assert df.iloc[0].score == pytest.approx(0.5)
    overall = df[(df.kind == "overall") & (df.name == "checkpoints")].iloc[0]
    assert overall.error_weeks == pytest.approx(26.5, abs=0.3)  # median of 1 and 52 weeks


@pytest.mark.parametrize("row, reason", [
    (dict(date=dt.date(2020, 3, 1)), "past the horizon"),
    (dict(date=dt.date(2016, 1, 1)), "before the run's start"),
    (dict(to="FOO"), "unknown controller code 'FOO'"),
    (dict(to="KRG"), "faction KRG is not in this run"),
    (dict(lat=37.0, lon=35.2), "lake cell"),
    (dict(lat=28.7, lon=48.2), "outside the theatre"),
    (dict(lat=45.0, lon=39.0), "outside the map"),
    (dict(lat=float("nan"), lon=float("nan"), problem="bad coordinates (nan, nan)"), "bad coordinates"),
    (dict(problem="no coordinates"), "no coordinates"),
])
def test_not_evaluable_rows_are_listed_excluded_and_counted(row, reason):
    run = fake_run(capture_step=step_of(CP_DATE))
    df = only_checkpoints([run], [cp(), cp(place="odd", **row)])
    bad = df[df.name == "odd"].iloc[0]
    assert bad.status == validate.NOT_EVALUABLE and reason in bad.reason
    assert np.isnan(bad.score)
    overall = df[(df.kind == "overall") & (df.name == "checkpoints")].iloc[0]
    assert overall.score == 1.0  # the good row alone
    assert overall.reason == "1 evaluated, 1 not evaluable"


def test_rows_past_104_weeks_count_once_the_horizon_reaches_them():
    cps = validate.default_checkpoints()
    tal_abyad = [c for c in cps if c.place == "Tal Abyad" and c.date == dt.date(2019, 10, 13)]
    assert len(tal_abyad) == 1 and tal_abyad[0].to_controller == "TURKEY_SNA"
    assert all(c.from_controller != c.to_controller for c in cps)
    _, reason = validate.locate(fake_run(weeks=104), tal_abyad[0])
    assert reason.startswith("past the horizon")
    _, reason = validate.locate(fake_run(weeks=131), tal_abyad[0])
    assert reason == "faction TURKEY_SNA is not in this run"  # no longer a horizon problem
    nationwide = [c for c in cps if c.place == "Iraq (nationwide)"]
    assert nationwide and nationwide[0].problem == "no coordinates"


# ------------------------------------------------------------------------------ patterns
def test_isis_defeat_scored_by_its_date():
    # ISIS's share falls linearly to 0 at week 104 (2019-06-29): no ground from week 104,
    # 14 weeks after 23 March 2019 (a share of 0.4% at week 103 is not a defeat)
    run = fake_run()
    p = validate.date_patterns(run, [])["isis_defeat"]
    assert p["error_weeks"] == pytest.approx(14, abs=0.01)
    assert p["score"] == pytest.approx(validate.timing_kernel(p["error_weeks"]))
    early = fake_run(weeks=40)  # defeated within 40 weeks: over a year early
    early.timeseries.loc[early.timeseries.metric == "share_territory_area", "value"] = 0.0
    assert validate.date_patterns(early, [])["isis_defeat"]["score"] == 0.0


def test_fact_patterns_name_their_rows_and_expected_metrics():
    runs = [fake_run(metrics={"cum_foreign_fighters_exported": lambda k: 40.0 * k})]
    df = validate.scorecard(runs, [cp()])
    facts = df[df.group.isin(["ISIS area", "displacement", "relocation", "foreign fighters"])]
    assert set(facts.group) == {"ISIS area", "displacement", "relocation", "foreign fighters"}
    assert facts.source.str.startswith("aggregate_facts_2015-2019.csv:").all()
    reloc = facts[facts.group == "relocation"]
    assert (reloc.status == validate.NOT_EVALUABLE).all()
    assert reloc.reason.str.contains(validate.RELOCATED).all()
    disp = facts[facts.group == "displacement"]
    assert disp.reason.str.contains(validate.DISPLACED_BY_GOV).all()
    assert disp[disp.name == "displacement_peace_spring"].reason.str.contains("past the horizon").all()
    # 2017-10 -> 2018-07: 39 weeks x 40 = 1,560 exported against 7,366 - 5,600 = 1,766 returned
    ff = facts[facts.name == "foreign_fighters_returned_2018-07"].iloc[0]
    assert ff.observed == 1766 and ff.status == "ok"
    assert ff.model == pytest.approx(40.0 * (step_of("2018-07-15") - step_of("2017-10-15")))
    assert ff.score == 1.0  # within 25%
    assert "past the horizon" in facts[facts.name == "foreign_fighters_returned_2019-07"].iloc[0].reason
    old = facts[facts.name == "isis_area_2015-01"].iloc[0]
    assert old.status == validate.NOT_EVALUABLE and "before the run's start" in old.reason
    start = facts[facts.name == "isis_area_2017-06-26"].iloc[0]
    area = history.theatre_area_km2(runs[0].geo)
    assert start.model == pytest.approx(0.3 * area) and start.observed == 36200
    lost = facts[facts.name == "isis_lost_2019-03-23"].iloc[0]
    assert lost.status == "ok" and lost.model == pytest.approx(100 * (1 - 0.4 * 14 / 104), abs=0.01)
    iraq = facts[facts.name == "isis_lost_2017-08-31"].iloc[0]
    assert iraq.status == validate.NOT_EVALUABLE


def test_new_metric_starts_scoring_without_code_changes():
    """Once the model records ``new_displaced_gov``, the operation's row is scored."""
    metrics = {("new_displaced_gov", "Daraa"): lambda k: 100_000.0,
               ("new_displaced_gov", "Quneitra"): lambda k: 60_000.0}  # 2 weeks -> 320,000
    run = fake_run(metrics=metrics)
    df = validate.scorecard([run], [cp()])
    daraa = df[df.name == "displacement_daraa_quneitra"].iloc[0]
    assert daraa.status == "ok" and daraa.observed == 320_000
    assert daraa.model == 320_000 and daraa.score == 1.0


def test_afrin_counts_the_kurdish_held_ground_only():
    """Row 40 counts the UN-registered displaced from Afrin district (the SDF-held pocket), so
    people leaving regime-held Aleppo in the same weeks do not count; secondary displacement
    from shelters on SDF ground does.  Window 20 Jan - 15 Mar 2018: the weekly records of
    27 Jan ... 10 Mar 2018, 7 weeks (2017-07-01 + 30..36 weeks)."""
    metrics = {("new_displaced_gov_holder", "Aleppo|SDF"): lambda k: 15_000.0,
               ("new_displaced_again_gov_holder", "Aleppo|SDF"): lambda k: 5_000.0,
               ("new_displaced_gov_holder", "Aleppo|SYRIAN_GOV"): lambda k: 50_000.0,
               ("new_displaced_gov", "Aleppo"): lambda k: 65_000.0}
    df = validate.scorecard([fake_run(metrics=metrics)], [cp()])
    afrin = df[df.name == "displacement_afrin"].iloc[0]
    weeks = sum(dt.date(2018, 1, 20) < START + dt.timedelta(weeks=k) <= dt.date(2018, 3, 15)
                for k in range(105))
    assert weeks == 7
    assert afrin.status == "ok" and afrin.observed == 150_000
    assert afrin.model == 7 * 20_000.0  # 140,000, not 7 x 70,000 over the governorate
    assert afrin.score == 1.0  # within 25%


def test_scorecard_png_written(tmp_path):
    runs = [fake_run(capture_step=step_of(CP_DATE) + 1,
                     metrics={"cum_foreign_fighters_exported": lambda k: 40.0 * k})]
    df = validate.scorecard(runs, [cp(), cp(place="odd", to="FOO")])
    validate.plot_scorecard(df, tmp_path / "scorecard.png")
    assert (tmp_path / "scorecard.png").stat().st_size > 10_000
    assert "not evaluable: unknown controller code" in validate.format_scorecard(df)


# ------------------------------------------------------------------------------ reading
HEADER = "date,place,lat,lon,from_controller,to_controller,event,source"


def test_bom_csv_is_read(tmp_path):
    p = tmp_path / "bom.csv"
    p.write_bytes(("\ufeff" + HEADER + "\n2017-10-17,Raqqa,35.9528,39.0079,ISIS,SDF,x,y\n").encode("utf-8"))
    (c,) = validate.read_checkpoints(p)
    assert c.date == dt.date(2017, 10, 17) and c.to_controller == "SDF" and not c.problem


def test_spreadsheet_dialect_is_read(tmp_path):
    p = tmp_path / "excel.csv"
    text = (HEADER.replace(",", ";") + "\r\n17/10/2017;Raqqa;35,9528;39,0079;ISIS;SDF;x;y\r\n"
            "10/31/2017;Somewhere;35,0;40,0;ISIS;SDF;x;y\r\n;;;;;;;\r\n")
    p.write_bytes(("\ufeff" + text).encode("utf-8"))
    a, b = validate.read_checkpoints(p)
    assert a.date == dt.date(2017, 10, 17) and a.lat == pytest.approx(35.9528) and a.lon == pytest.approx(39.0079)
    assert b.date == dt.date(2017, 10, 31)


def test_bad_rows_kept_with_their_problem(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text(HEADER + "\nnot a date,a,35,39,ISIS,SDF,,\n2017-10-17,b,,,ISIS,SDF,,\n"
                 "2017-10-17,c,nan,39,ISIS,SDF,,\n2017-10-17,d,95,39,ISIS,SDF,,\n", encoding="utf-8")
    rows = validate.read_checkpoints(p)
    assert [r.problem.split(" (")[0].split(" '")[0] for r in rows] == \
        ["bad date", "no coordinates", "bad coordinates", "bad coordinates"]


@pytest.mark.parametrize("make, message", [
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), "binary"),
    (lambda p: p.write_text("a,b\n1,2\n"), "missing columns"),
    (lambda p: p.write_bytes(b""), "is empty"),
])
def test_unreadable_paths_give_one_line(tmp_path, make, message):
    p = tmp_path / "cps.csv"
    make(p)
    with pytest.raises(validate.CheckpointFileError) as e:
        validate.read_checkpoints(p)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_oversized_file_refused_before_reading(tmp_path):
    p = tmp_path / "huge.csv"
    with open(p, "wb") as fh:
        fh.write(HEADER.encode())
        fh.truncate(validate.MAX_CHECKPOINT_BYTES + 1)  # sparse: nothing is written
    with pytest.raises(validate.CheckpointFileError, match="MAX_CHECKPOINT_BYTES"):
        validate.read_checkpoints(p)
    rows = HEADER + "\n" + "2017-10-17,x,35,39,ISIS,SDF,,\n" * 11
    (tmp_path / "many.csv").write_text(rows)
    with pytest.raises(validate.CheckpointFileError, match="MAX_CHECKPOINT_ROWS"):
        validate.read_checkpoints(tmp_path / "many.csv", max_rows=10)


def test_cli_one_line_error_for_a_directory(tmp_path, capsys):
    from sim.commands.validate import main

    assert main(["--checkpoints", str(tmp_path), "--seeds", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sim validate: ") and "is a directory" in err and "\n" not in err


# ------------------------------------------------------------------------------ plot overlays
def test_history_points_for_the_overlays():
    pts = history.isis_area_points()
    assert (pts.loc[pts.date == "2017-06-26", "km2"] == 36200).any()
    assert pts.loc[pts.date == "2019-03-23", "km2"].iloc[0] == 0.0
    disp = history.displacement_points()
    assert set(disp.label) >= {"Afrin", "Daraa/Quneitra", "Peace Spring"}
    run = fake_run()
    assert set(history.in_range(disp, run.dates).label) == {"Raqqa (since Apr 2017)", "Afrin", "Daraa/Quneitra"}


def test_median_first_capture_counts_runs_that_never_capture():
    d = step_of(CP_DATE)
    runs = [fake_run(capture_step=d + 1), fake_run(), fake_run()]
    row = only_checkpoints(runs, [cp()]).iloc[0]
    assert row.model_date == "never" and np.isinf(row.error_weeks)
    assert row.score == pytest.approx(1 / 3)
