# pystap: two commands on a fresh Debian machine, as root.
#   make demo   install pystap and run the demo (unprivileged user, signed module, refusals)
#   make test   install pystap with its test tools and run the whole test suite
#
# The virtual environment uses Debian's own python3 and lives outside /root, so
# that the unprivileged users the demo and the tests act as can run pystap.

VENV    ?= /opt/pystap/venv
PY      := $(VENV)/bin/python
APT_PKGS = python3 python3-venv gcc libc6-dev util-linux binutils
BENCH_APT_PKGS = systemtap bpftrace

.PHONY: demo test install deps venv dev lint bench clean

deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

venv: deps
	@[ -x $(PY) ] || /usr/bin/python3 -m venv $(VENV)
	@chmod -R a+rX $(dir $(VENV))

install: venv
	$(PY) -m pip install -q --disable-pip-version-check '.[test]'
	@chmod -R a+rX $(dir $(VENV))

dev: venv
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'

demo: install
	$(PY) -m pystap.demo

lint: install
	$(PY) -m ruff check src tests bench

test: install
	$(PY) -m ruff check src tests bench
	$(PY) -m pytest -q -p no:cacheprovider tests

bench: install
	@missing=""; for p in $(BENCH_APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi
	$(PY) -m bench

clean:
	rm -rf build dist src/*.egg-info
