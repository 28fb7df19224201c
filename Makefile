# The two commands a newcomer needs (see README.md).
.PHONY: dev test

## Build the host and the examples, then serve them on http://127.0.0.1:8000
dev:
	./scripts/dev.sh

## Run the whole test suite (what CI runs)
test:
	./scripts/test.sh
