# Two commands on a fresh machine (README, first lines):
#   make demo   .venv + install + Fashion-MNIST, then the main search (python -m search.run space=fashion_attention)
#   make test   the same setup (+ chromium for the browser test, PostgreSQL for the team test), then the README's test
#               command
# Both are idempotent: the install reruns only when pyproject.toml changed (stamp .venv/.installed), data and system
# packages are fetched only when missing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FASHION_DEBIAN := /usr/share/datasets/fashion-mnist
# the README's test command: its first line that starts with "python -m pytest" (.ci/run runs it through make test)
TEST_CMD := $(shell grep -m1 '^python -m pytest' README.md)

# apt_install PKG...: install Debian packages when apt-get is usable (as root without sudo, else with passwordless
# sudo), after apt-get update; returns non-zero when apt-get is not usable or the install fails.
APT := apt_install() { \
	command -v apt-get >/dev/null 2>&1 || return 1; \
	if [ "$$(id -u)" -eq 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"; \
	else return 1; fi; \
	$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq "$$@"; \
}

.PHONY: demo test setup data browser postgres

demo: setup data
	$(BIN)/python -m search.run space=fashion_attention

test: setup data browser postgres
	@[ -n "$(TEST_CMD)" ] || { echo "README.md has no line starting with 'python -m pytest'"; exit 1; }
	@echo '$$ $(TEST_CMD)'
	@export PATH="$(CURDIR)/$(BIN):$$PATH" VIRTUAL_ENV="$(CURDIR)/$(VENV)"; rc=0; $(TEST_CMD) || rc=$$?; \
	if [ "$$rc" -eq 5 ]; then echo "pytest collected no tests: that is a failure here"; exit 1; fi; exit $$rc

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@[ -x $(BIN)/pip ] || $(PYTHON) -m venv $(VENV) || { $(APT); rm -rf $(VENV); \
		apt_install python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $@

# Fashion-MNIST: the Debian package when apt-get is usable, else torchvision's download into ~/.cache/attnas/data
# (where the search also looks; nothing is fetched when either already has it).
data: setup
	@$(APT); \
	if [ -d $(FASHION_DEBIAN) ]; then echo "Fashion-MNIST: $(FASHION_DEBIAN)"; \
	elif apt_install dataset-fashion-mnist; then echo "Fashion-MNIST: installed dataset-fashion-mnist"; \
	else echo "Fashion-MNIST: apt-get not usable here; torchvision downloads it into ~/.cache/attnas/data"; \
		$(BIN)/python -m trials fashion_mnist; fi

# chromium + chromedriver for the browser test; not fatal when apt-get is not usable (that test then says why)
browser:
	@$(APT); \
	if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif apt_install chromium chromium-driver; then echo "installed chromium chromium-driver"; \
	else echo "chromium/chromedriver missing and apt-get not usable: the browser test cannot run here"; fi

# PostgreSQL's programs (initdb, pg_ctl) for the team test, which starts its own server in a temporary folder; not
# fatal when apt-get is not usable (that test then says why)
postgres:
	@$(APT); \
	if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then :; \
	elif apt_install postgresql; then echo "installed postgresql"; \
	else echo "postgresql missing and apt-get not usable: the team test cannot run here"; fi
