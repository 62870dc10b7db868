"""Native unit tests, no host needed: python3 -m unittest test_app.py"""

from __future__ import annotations

import json
import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "sdk")]

from projector_sdk import testing  # noqa: E402

from app import Counter  # noqa: E402


class CounterTest(unittest.TestCase):
    def setUp(self) -> None:
        testing.reset()

    def test_sample_events_fold_to_the_expected_state(self) -> None:
        lines = (HERE / "events.jsonl").read_text().splitlines()
        testing.handle(Counter, testing.events("events", [line for line in lines if line.strip()]))
        expected = json.loads((HERE / "expected.json").read_text())
        self.assertEqual(testing.state_json(), expected)

    def test_query_answers_a_count_or_null(self) -> None:
        testing.handle(Counter, testing.events("events", ['{"type":"a"}', '{"type":"a"}']))
        self.assertEqual(testing.query(Counter, "count", '{"type":"a"}'), b'{"count":2}')
        self.assertEqual(testing.query(Counter, "count", '{"type":"b"}'), b"null")

    def test_an_event_without_a_type_fails_and_changes_nothing(self) -> None:
        with self.assertRaises(testing.BatchFailed) as failed:
            testing.handle(Counter, testing.events("events", ['{"type":"a"}', '{"kind":"a"}']))
        self.assertEqual(failed.exception.index, 1)
        self.assertEqual(testing.state_json(), {})


if __name__ == "__main__":
    unittest.main()
