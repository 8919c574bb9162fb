# The fault suite: load through real nginx while tgq-webhook workers and tgq-drain
# are SIGKILLed, the queue's filesystem fills up, another process holds the write
# lock, the fake Bot API misbehaves and nginx reloads; a ledger per scenario
# (tests/faults/faults.py).  About 10 minutes; `make test` replays it in --quick
# mode (tests/integration/test_faults_quick.py).
.PHONY: test-faults
test-faults: all
	$(PYTHON) tests/faults/faults.py --build $(B)
