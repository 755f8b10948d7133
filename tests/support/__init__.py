"""Test harness for the real parts: SIPp callers and callees, DTMF captures."""
