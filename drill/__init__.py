"""The local drill: every healer's scenario against local stand-ins, with a readable timeline."""
