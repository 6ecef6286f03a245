"""The served app's Streamlit settings: no file watching (a quiet log while jobs and tests write files)."""
from pathlib import Path
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
