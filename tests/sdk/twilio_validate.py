"""Twilio's own RequestValidator on a status callback stopgate sent.

Reads {"url", "params", "signature", "token"} as JSON on stdin; prints
{"valid": true|false}. Run by tests/api/webhooks.rs with the test venv.
"""

import json
import sys

from twilio.request_validator import RequestValidator

case = json.load(sys.stdin)
validator = RequestValidator(case["token"])
print(json.dumps({"valid": validator.validate(case["url"], case["params"], case["signature"])}))
