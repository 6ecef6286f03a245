"""The served app's Streamlit settings: no file watching (a quiet log while jobs and tests write files)."""
from pathlib import Path
import os
import re
import subprocess
import sys
import tomllib

ROOT = Path(__file__).resolve().parent.parent


def test_the_config_turns_file_watching_off():
    server = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]
    assert server["fileWatcherType"] == "none" and server["runOnSave"] is False


def test_streamlit_itself_reads_no_file_watching():
    """What `streamlit run` in the app folder resolves, asked of Streamlit in a real process."""
    out = subprocess.run([sys.executable, "-m", "streamlit", "config", "show"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    server = out.stdout.split("\n[server]\n", 1)[1].split("\n[", 1)[0]
    assert re.search(r'^fileWatcherType = "none"$', server, re.M) and re.search(r"^runOnSave = false$", server, re.M)


_TORCH_SEES = """
import os, sys

class Watch:  # notes OMP_WAIT_POLICY as it is when torch starts to load (OpenMP reads it then)
    def find_spec(self, name, path=None, target=None):
        if name == "torch":  # seen: the rest of the run (coding with the shipped model) is not looked at
            print("TORCH", True, "POLICY", [os.environ.get("OMP_WAIT_POLICY", "unset")], flush=True)
            os._exit(0)
        return None

sys.meta_path.insert(0, Watch())
from streamlit.testing.v1 import AppTest
at = AppTest.from_file("streamlit_app.py", default_timeout=300).run()
print("TORCH", "torch" in sys.modules, "never imported;", at.exception)
"""


def test_the_app_sets_a_passive_openmp_wait_policy_before_torch_loads():
    """The app's coding threads sleep rather than spin while they wait (they share the cores with
    Streamlit's threads and other sessions); the command line keeps OpenMP's default."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", _TORCH_SEES], cwd=ROOT, capture_output=True, text=True,
                         timeout=600, env={**env, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-4:] == ["TORCH", "True", "POLICY", "['PASSIVE']"]
