# The two commands: `make demo` (the main job) and `make test` (the tests).
PY := .venv/bin/python
.PHONY: install demo test test-slow lint bench clean

install:
	@bash scripts/install.sh

demo: install
	@$(PY) -m ipoib demo

test: install
	@$(PY) -m pytest -q -m "not slow"

test-slow: install
	@$(PY) -m pytest -q -m slow

lint: install
	@$(PY) -m ruff check src tests bench && $(PY) -m mypy src

bench: install
	@$(PY) -m bench

clean:
	rm -rf .venv build src/*.egg-info .pytest_cache src/ipoib/_compiled.stamp
	find src -name '*.so' -delete
