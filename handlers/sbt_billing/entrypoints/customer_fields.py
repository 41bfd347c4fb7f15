"""The customer details billing accepts, at every door (SBT's events and the billing API's PATCH).

Held to what Stripe's customer accepts (its API reference: `name` at most 256 characters, `email` at
most 512, `address.country` a two-letter ISO 3166-1 code), so that a value Stripe would refuse is
rejected where it comes in, naming its field, instead of being recorded and refused by Stripe later.
A rejection never repeats the value: an email address is personal data.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints
from pydantic_core import PydanticCustomError

NAME_MAX = 256
EMAIL_MAX = 512

# A reasonable syntax check, no network: a dot-atom local part of at most 64 characters, and a domain of
# letter-digit-hyphen labels ending in an alphabetic top-level label (an internationalised domain in its
# xn-- form). Quoted local parts and address literals (`user@[192.0.2.1]`) are refused.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+(?:[A-Za-z]{{2,63}}|xn--[A-Za-z0-9-]{{1,59}})")

# ISO 3166-1 alpha-2: the 249 officially assigned codes, and XK (Kosovo), which Stripe also accepts.
_COUNTRY_CODES = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV
    BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES
    ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE
    IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY
    MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU
    NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM
    SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE
    VG VI VN VU WF WS YE YT ZA ZM ZW XK
"""
COUNTRIES = frozenset(_COUNTRY_CODES.split())


def _email(value: str) -> str:
    local, _, domain = value.rpartition("@")
    if len(local) > 64 or len(domain) > 253 or not _EMAIL.fullmatch(value):
        raise PydanticCustomError("email", "is not a valid email address")
    return value


def _country(value: str) -> str:
    if value not in COUNTRIES:
        raise PydanticCustomError("country", "is not an ISO 3166-1 alpha-2 country code (e.g. US)")
    return value


CustomerName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX)]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=EMAIL_MAX),
    AfterValidator(_email),
]
Country = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z]{2}$"),
    AfterValidator(_country),
]
