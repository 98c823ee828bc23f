"""``python -m orchestrator`` (alias ``llmopt run``): every service in dependency order."""

from __future__ import annotations

import sys

from orchestrator.main import main

sys.exit(main())
