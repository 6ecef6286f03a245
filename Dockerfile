# The aecore studio (Streamlit app) on CPU.
#
#   docker build -t aecore .
#   docker run --rm -p 8501:8501 -v aecore-data:/data aecore     # then open http://localhost:8501
#
# Hosting notes (environment variables, limits, memory): docs/HOSTING.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt .
# torch comes from PyTorch's CPU index: the same torch==2.13.0 from the default PyPI index
# is the CUDA build, which pulls in several GB of NVIDIA libraries this CPU app never uses.
# The version is the one pinned in requirements.txt (the CPU wheel is 2.13.0+cpu, which
# satisfies the pin). Everything else comes from PyPI as pinned; pytest, hypothesis and
# playwright are for the tests and stay out of the image. No system packages are needed:
# the wheels bundle their libraries and the slim image has libstdc++ and zlib.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "$(grep -E '^torch==' requirements.txt)" \
 && grep -vE '^(torch|pytest|hypothesis|playwright)==' requirements.txt > /tmp/runtime.txt \
 && pip install -r /tmp/runtime.txt \
 && rm /tmp/runtime.txt

# The code stays root-owned (read-only for the app); the app runs as an unprivileged user
# and writes only under /data: fine-tuned and imported weights, and fine-tuning jobs.
RUN useradd --create-home --uid 10001 aecore \
 && mkdir -p /data/weights /data/jobs \
 && chown -R aecore:aecore /data
COPY . .
# Compiled once here: the app runs as a user who cannot write beside the code (and
# PYTHONDONTWRITEBYTECODE is set), so without this every process would recompile aecore.
RUN python -m compileall -q aecore pages streamlit_app.py
ENV AECORE_USER_WEIGHTS=/data/weights \
    AECORE_JOBS_DIR=/data/jobs
VOLUME ["/data"]
USER aecore

EXPOSE 8501
# The slim image has no curl: Python asks Streamlit's health endpoint (200 "ok" when up).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]
CMD ["streamlit", "run", "streamlit_app.py", "--server.address", "0.0.0.0"]
