"""A stateful Stripe API emulator over HTTP, for tests and local runs (never deployed).

Point the real stripe SDK at it::

    from stripe_emulator import StripeEmulator
    with StripeEmulator() as emu:
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": emu.url})

See ``stripe_emulator/README.md`` for what is emulated and the admin API.
"""

from .server import Emulator, Request, StripeEmulator

__all__ = ["Emulator", "Request", "StripeEmulator"]
