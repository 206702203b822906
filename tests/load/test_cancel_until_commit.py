"""The loader asks the cancel hook right before publishing and again just before the commit."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.errors import CancelledError
from backend.load.loader import LoadHooks, load_file
from backend.models import LoadRequest
from tests.support import export_rows, rows, write_csv


class TestCancelUntilCommit:
    @pytest.mark.parametrize("at_call", [1, 2])
    def test_a_cancel_seen_at_a_final_check_rolls_everything_back(self, env, tmp_path: Path, at_call: int):
        """A cancel seen before the publish transaction (1) or just before commit (2) publishes nothing."""
        settings, db = env
        path = write_csv(tmp_path / "levels.csv", [["n"], ["1"]])
        load_file(db, settings, LoadRequest(path=path))
        write_csv(path, [["n"], ["2"], ["3"]])
        finals: list[int] = []

        def check_cancel(tracking_id: int, *, final: bool = False, requested: bool | None = None) -> None:
            if final:
                finals.append(tracking_id)
                if len(finals) == at_call:
                    raise CancelledError("levels.csv: cancelled by operator (test)", stage="cancel")

        with pytest.raises(CancelledError):
            load_file(db, settings, LoadRequest(path=path), LoadHooks(check_cancel=check_cancel))
        assert export_rows(db, "levels") == [["n"], ["1"]]
        status = rows(db, 'SELECT status FROM ref."File_Monitor_Tracking" WHERE id = :i', i=finals[0])
        assert status == [("cancelled",)]

    def test_both_final_checks_are_made_on_a_load_that_publishes(self, env, tmp_path: Path):
        """A load that is not cancelled passes the pre-publish and the pre-commit check."""
        settings, db = env
        finals: list[int] = []

        def check_cancel(tracking_id: int, *, final: bool = False, requested: bool | None = None) -> None:
            if final:
                finals.append(tracking_id)

        result = load_file(
            db,
            settings,
            LoadRequest(path=write_csv(tmp_path / "x.csv", [["n"], ["1"]])),
            LoadHooks(check_cancel),
        )
        assert finals == [result.tracking_id, result.tracking_id]

    def test_the_final_checks_are_handed_the_flag_an_operator_set(self, env, tmp_path: Path):
        """A cancel committed before the load reaches both final checks, read in the load's transaction."""
        from backend import tracking

        settings, db = env
        path = write_csv(tmp_path / "flags.csv", [["n"], ["1"]])
        tracking_id = tracking.start(db, LoadRequest(path=path), table=None, size=1, mtime=1.0)
        tracking.request_cancel(db, tracking_id)
        seen: list[bool | None] = []

        def check_cancel(tracking_id: int, *, final: bool = False, requested: bool | None = None) -> None:
            if final:
                seen.append(requested)
                if len(seen) == 2:
                    raise CancelledError("flags.csv: cancelled by operator (test)", stage="cancel")

        with pytest.raises(CancelledError):
            load_file(
                db,
                settings,
                LoadRequest(path=path, tracking_id=tracking_id),
                LoadHooks(check_cancel=check_cancel),
            )
        assert seen == [True, True]
        assert rows(db, 'SELECT status FROM ref."File_Monitor_Tracking" WHERE id = :i', i=tracking_id) == [
            ("cancelled",)
        ]

    def test_an_unset_flag_reaches_the_final_checks_as_false(self, env, tmp_path: Path):
        """Without a cancel the final checks are told so (False), not left to look themselves (None)."""
        settings, db = env
        seen: list[bool | None] = []

        def check_cancel(tracking_id: int, *, final: bool = False, requested: bool | None = None) -> None:
            if final:
                seen.append(requested)

        load_file(
            db,
            settings,
            LoadRequest(path=write_csv(tmp_path / "x.csv", [["n"], ["1"]])),
            LoadHooks(check_cancel),
        )
        assert seen == [False, False]
