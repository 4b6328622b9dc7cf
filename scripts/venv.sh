# Sourced by scripts/demo and scripts/test (from the repository root): the one place that
# makes .venv and installs llmci, so the torch pin cannot drift between them.
install_llmci() {  # install_llmci EXTRAS, e.g. install_llmci train
  [ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
  # torch pinned first: 2.13.0 is the CPU build on these machines; an unpinned torch pulls GBs of CUDA.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$1]"
}
