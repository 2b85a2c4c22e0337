#!/usr/bin/env python3
"""The benchmark harness never rots: run `bench/run --smoke` and check that it
finished and wrote the table with every scenario.

This asserts behaviour, never speed: each scenario ran (or, for the inbound
endpoints that a build may not have yet, said so), nothing answered non-2xx,
the mock provider got what stopgate forwarded, and the files are there.
Run by scripts/test.sh after the cargo suite (it uses the dev build the suite
already made).
"""

import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Scenarios 8 and 9 need POST /v1/inbound and GET /{code}; a build without
# them reports "unavailable" instead of failing the run.
MAY_BE_UNAVAILABLE = {"8", "9"}


class SmokeTest(unittest.TestCase):
    def test_smoke_run_writes_every_scenario(self):
        with tempfile.TemporaryDirectory(prefix="bench-smoke-") as out:
            r = subprocess.run(
                [sys.executable, str(ROOT / "bench" / "run"), "--smoke", "--debug-build",
                 "--out", out],
                cwd=ROOT, capture_output=True, text=True, timeout=600)
            self.assertEqual(r.returncode, 0, f"bench/run --smoke failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
            out = Path(out)
            for name in ("latest.md", "latest.json"):
                self.assertTrue((out / name).is_file(), name)
            dated = [p for p in out.glob("*.json") if p.name != "latest.json"]
            self.assertEqual(len(dated), 1, "one dated JSON next to latest.json")

            data = json.loads((out / "latest.json").read_text())
            rows = {s["id"]: s for s in data["scenarios"]}
            self.assertEqual(sorted(rows, key=int), [str(i) for i in range(1, 12)])
            for sid, s in rows.items():
                with self.subTest(scenario=sid):
                    if s["status"] == "unavailable":
                        self.assertIn(sid, MAY_BE_UNAVAILABLE)
                        self.assertIn("not available in this build", s["note"])
                        continue
                    self.assertEqual(s["status"], "ok", s["note"])
                    self.assertGreater(s["throughput"], 0)
                    self.assertGreater(s["load"]["requests"], 0)
                    self.assertGreater(s["p99_ms"], 0)
                    self.assertGreaterEqual(s["p99_ms"], s["p50_ms"])
                    self.assertGreater(s["rss_kib"], 0)
                    self.assertEqual(s["non_2xx"], 0)
                    self.assertEqual(s["errors"], 0, s["note"])
            # What stopgate says it forwarded, the mock received. The mock may
            # have a few more: requests cut off when wrk stops are forwarded
            # but never counted (at most one request per connection).
            for sid in ("3", "4", "5", "6", "7", "10"):
                c = rows[sid]["checks"]
                sent, got = c["recipients"]["sent"], c["mock_accepted"]
                batch = 1000 if sid == "6" else 1
                self.assertGreater(sent, 0)
                self.assertGreaterEqual(got, sent, sid)
                self.assertLessEqual(got - sent, rows[sid]["load"]["connections"] * batch, sid)
            # The SMPP upstream: every message stopgate sent reached the SMSC.
            c = rows["11"]["checks"]
            self.assertGreater(c["recipients"]["sent"], 0)
            self.assertGreaterEqual(c["smsc_submits"], c["recipients"]["sent"])
            self.assertLessEqual(c["smsc_submits"] - c["recipients"]["sent"], rows["11"]["load"]["connections"])
            self.assertEqual(rows["10"]["load"]["window"], 64)
            self.assertIsNotNone(data["ratios"]["smpp_front_vs_http_marketing_link"])
            self.assertIsNotNone(data["ratios"]["upstream_smpp_vs_upstream_http"])
            self.assertTrue(data["preload"]["probe_blocked"])
            self.assertEqual(data["preload"]["import_report"]["imported"], data["preload"]["numbers"])

            lat = data["latency_at_half_saturation"]
            self.assertEqual(sorted(lat["runs"]), ["direct", "nginx", "stopgate"])
            for name, run in lat["runs"].items():
                self.assertGreater(run["requests"], 0, name)
                self.assertEqual(run["non_2xx"], 0, name)
            self.assertIsNotNone(data["ratios"]["transactional_vs_nginx"])
            self.assertEqual(len(data["targets"]), 10)
            self.assertEqual(data["meta"]["cores"] > 0, True)

            md = (out / "latest.md").read_text()
            for s in rows.values():
                self.assertIn(f"| {s['id']} | {s['title']} |", md)
            self.assertIn("## Ratios (same run)", md)
            self.assertIn("## Targets (issues 6 and 13)", md)


if __name__ == "__main__":
    unittest.main(verbosity=2)
