"""python -m aecore.jobs run JOB_DIR: the worker that `start` spawns (also resumes in the foreground)."""
import sys

from .worker import main

sys.exit(main())
