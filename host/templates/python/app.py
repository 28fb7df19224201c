"""{{name}}: a wasmpod handler. Try it with `wasmpod run .` (it reads
test_input.json); serve it with `wasmpod deploy . --endpoint {{name}}`."""

import wasmpod_sdk as wasmpod


@wasmpod.handler
def handle(job_input):
    name = job_input.get("name", "world") if isinstance(job_input, dict) else "world"
    # Log lines and prints go to the job's logs (`wasmpod logs {{name}}`).
    wasmpod.info(f"greeting {name}")
    wasmpod.progress("greeting")
    return {"greeting": f"hello, {name}"}
