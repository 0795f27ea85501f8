"""Verifies one delivery with the Standard Webhooks library.

Reads {"secret": "whsec_…", "headers": {…}, "body": "<base64>"} on stdin;
exits 0 when the signature verifies, 1 (with the library's reason) when not.
"""
import base64
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

req = json.load(sys.stdin)
try:
    Webhook(req["secret"]).verify(base64.b64decode(req["body"]), req["headers"], json_parse=False)
except WebhookVerificationError as e:
    print(f"not verified: {e}")
    sys.exit(1)
print("verified")
