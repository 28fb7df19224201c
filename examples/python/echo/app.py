"""`echo`: returns its input unchanged. The smallest handler there is."""

import wasmpod_sdk as wasmpod


@wasmpod.handler
def handle(job_input):
    return job_input
