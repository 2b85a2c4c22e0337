"""The official Twilio Python SDK, pointed at stopgate's Twilio-compatible front.

Run by tests/api/twilio_front.rs with the virtualenv from
scripts/install-test-deps.sh. Prints one JSON object per line, one per case;
the Rust test asserts on them.

Environment: STOPGATE_URL (http://127.0.0.1:port), ACCOUNT_SID, AUTH_TOKEN,
OPTED_OUT (a number opted out from this tenant), SIGN_URL (a webhook URL to sign),
WEBHOOK_TOKEN (the auth token Twilio signs webhooks with).
"""

import datetime
import json
import os

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

BASE = os.environ["STOPGATE_URL"]


class StopgateHttpClient(TwilioHttpClient):
    """The one change an application makes: api.twilio.com becomes stopgate.

    `extra_headers` is how an application sets X-Stopgate-Category: the SDK's
    `messages.create` has no per-call headers, its HTTP client does.
    """

    extra_headers = {}

    def request(self, method, url, params=None, data=None, headers=None, auth=None,
                timeout=None, allow_redirects=False):
        url = url.replace("https://api.twilio.com", BASE, 1)
        headers = dict(headers or {})
        headers.update(self.extra_headers)
        return super().request(method, url, params=params, data=data, headers=headers,
                               auth=auth, timeout=timeout, allow_redirects=allow_redirects)


http = StopgateHttpClient()
client = Client(os.environ["ACCOUNT_SID"], os.environ["AUTH_TOKEN"], http_client=http)


sent_sids = {}


def send(case, **kwargs):
    try:
        m = client.messages.create(**kwargs)
        sent_sids[case] = m.sid
        out = {
            "case": case,
            "sid": m.sid,
            "status": m.status,
            "to": m.to,
            "from": m.from_,
            "body": m.body,
            "num_segments": m.num_segments,
            "account_sid": m.account_sid,
            "direction": m.direction,
            "date_created_parsed": isinstance(m.date_created, datetime.datetime),
        }
    except TwilioRestException as e:
        out = {"case": case, "error": {"code": e.code, "status": e.status, "msg": e.msg}}
    print(json.dumps(out), flush=True)


send("marketing", to="+33612345678", from_="ACME", body="Soldes -50% ce week-end !")
send("opted_out", to=os.environ["OPTED_OUT"], from_="ACME", body="Soldes -50% ce week-end !")
http.extra_headers = {"X-Stopgate-Category": "otp"}
send("otp_header", to="+33612345678", from_="ACME", body="Your code: 482913")
http.extra_headers = {}
send("otp_sender_default", to="+33612345678", from_="ACMEOTP", body="Your code: 771234")
send("invalid_to", to="+3361234", from_="ACME", body="Hi")

# Looking messages up: fetch(), list() and stream() (which follows Twilio's
# next_page_uri), as an application that moved from Twilio does.
m = client.messages(sent_sids["marketing"]).fetch()
print(json.dumps({"case": "fetch", "sid": m.sid, "status": m.status, "to": m.to,
                  "from": m.from_, "num_segments": m.num_segments, "error_code": m.error_code,
                  "date_created_parsed": isinstance(m.date_created, datetime.datetime)}), flush=True)
try:
    client.messages("SM" + "0" * 32).fetch()
    print(json.dumps({"case": "fetch_unknown", "found": True}), flush=True)
except TwilioRestException as e:
    print(json.dumps({"case": "fetch_unknown", "error": {"code": e.code, "status": e.status}}), flush=True)
print(json.dumps({"case": "list", "messages": [
    {"sid": m.sid, "status": m.status, "to": m.to, "error_code": m.error_code}
    for m in client.messages.list(limit=20)]}), flush=True)
print(json.dumps({"case": "stream", "sids": [
    m.sid for m in client.messages.stream(page_size=2)]}), flush=True)
print(json.dumps({"case": "list_to", "sids": [
    m.sid for m in client.messages.list(to=os.environ["OPTED_OUT"])]}), flush=True)

# Twilio's RequestValidator signs an inbound webhook as Twilio would.
params = {
    "MessageSid": "SM0123456789abcdef0123456789abcdef",
    "From": "+33612345678",
    "To": "36111",
    "Body": "STOP",
    "AccountSid": os.environ["ACCOUNT_SID"],
    "NumMedia": "0",
}
validator = RequestValidator(os.environ["WEBHOOK_TOKEN"])
print(json.dumps({
    "case": "signature",
    "url": os.environ["SIGN_URL"],
    "params": params,
    "signature": validator.compute_signature(os.environ["SIGN_URL"], params),
}), flush=True)
