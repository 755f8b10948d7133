"""The dialplan contract between the engine and asterisk-config/: the contexts the engine
originates into, the channel strings, the channel variables, the ConfBridge profiles and prompts,
the call ids the engine chooses, and what Asterisk's reports of a failed dial-out mean as a
domain ``FailureReason``."""

from __future__ import annotations

import secrets

from engine.domain.model import FailureReason, Role

ROOM_CONTEXT = "veche-room"
ROOM_EXTEN = "join"
DIALIN_CONTEXT = "veche-dialin"
DIALOUT_CONTEXT = "veche-dialout"
ANNOUNCE_CHANNEL = "Local/play@veche-announce/n"
RECORD_CHANNEL = "Local/record@veche-record/n"

PARTICIPANT_VARIABLE = "VECHE_PARTICIPANT"  # also in manager.conf channelvars
PROFILE_VARIABLE = "VECHE_PROFILE"
ROOM_VARIABLE = "VECHE_ROOM"
MAX_MEMBERS_VARIABLE = "VECHE_MAX_MEMBERS"
# a dial-in handed to the conference's node: where to send it, and the one-time token it carries
# there in the X-Veche-Token header
FORWARD_HOST_VARIABLE = "VECHE_FORWARD"
FORWARD_PORT_VARIABLE = "VECHE_FORWARD_PORT"
FORWARD_TOKEN_VARIABLE = "VECHE_FORWARD_TOKEN"

PROFILES = {Role.CHAIR: "veche_chair", Role.GUEST: "veche_guest"}
# A dial-in guest of a permanent room with "guests wait for the chair" (wait_marked).
WAITING_GUEST_PROFILE = "veche_guest_wait"
# Whoever the owner or chair invites enters even a locked room (see asterisk-config/confbridge.conf).
INVITED_PROFILES = {Role.CHAIR: "veche_chair", Role.GUEST: "veche_guest_invited"}
ANNOUNCER_PROFILE = "veche_announcer"
RECORDER_PROFILE = "veche_recorder"
# The fixed prompts the engine may play into a room (key -> Asterisk sound name).
PROMPTS = {"deadline_warning": "beep", "extended": "conf-extended", "ending": "confbridge-conf-end",
           "recording": "conf-now-recording"}
ROOM_EXTRA_MEMBERS = 2  # room seats beyond the participants: the announcer and the recorder

# Call ids the engine chooses (the ChannelId of its Originates, or a dial-in caller's token).
ANNOUNCER_PREFIX = "an-"
DIALOUT_PREFIX = "vo-"
DIALIN_PREFIX = "vi-"
FAR_LEG_SUFFIX = "-2"  # the second half of a Local channel the engine originated (OtherChannelId)

DEFAULT_CAUSES = {FailureReason.BUSY: 17, FailureReason.NO_ANSWER: 19, FailureReason.CONGESTION: 34,
                  FailureReason.REJECTED: 21, FailureReason.INVALID_NUMBER: 28}
CAUSE_CALL_REJECTED = 21
# DIALSTATUS of veche-trunk's Dial, reported by UserEvent VecheDialResult, as a metrics outcome
DIAL_STATUS_OUTCOMES = {"ANSWER": "answered", "BUSY": "busy", "NOANSWER": "no_answer", "CONGESTION": "congestion",
                        "CANCEL": "cancelled"}
# OriginateResponse Reason when the dialplan left no VecheDialResult (e.g. refused by veche-dialout)
ORIGINATE_REASON_OUTCOMES = {"4": "answered", "5": "busy", "3": "no_answer", "8": "congestion"}


def dialout_channel(number: str) -> str:
    """The channel a dial-out of ``number`` is originated on."""
    return f"Local/{number}@{DIALOUT_CONTEXT}/n"


def profile_for(role: Role, *, invited: bool) -> str:
    """The ConfBridge user profile of a participant in ``role``: an invited (dialled) participant
    enters a locked room too."""
    return (INVITED_PROFILES if invited else PROFILES)[role]


def new_dialout_id() -> str:
    return f"{DIALOUT_PREFIX}{secrets.token_hex(8)}"


def new_announcer_id() -> str:
    return f"{ANNOUNCER_PREFIX}{secrets.token_hex(8)}"


def new_dialin_token() -> str:
    """The ``call_id`` of a dial-in participant until AMI reports its channel's Uniqueid."""
    return f"{DIALIN_PREFIX}{secrets.token_hex(8)}"


def is_dialin_token(value: str | None) -> bool:
    return bool(value) and len(value) == len(DIALIN_PREFIX) + 16 and value.startswith(DIALIN_PREFIX) \
        and all(c in "0123456789abcdef" for c in value[len(DIALIN_PREFIX):])


def is_dialout_id(call_id: str) -> bool:
    """An engine-chosen dial-out call id (not its far leg)."""
    return call_id.startswith(DIALOUT_PREFIX) and not call_id.endswith(FAR_LEG_SUFFIX)


def is_announcer(call_id: str) -> bool:
    return call_id.startswith(ANNOUNCER_PREFIX)


def failure_from(dial_status: str | None, dial_cause: int | None, originate_reason: str | None,
                 hangup_cause: int | None) -> tuple[FailureReason, int | None]:
    """Why a dial-out failed and its hangup cause, from what Asterisk reported. The Originate
    Reason alone does not tell busy from rejected, so the dialplan's DialStatus comes first."""
    cause = dial_cause or hangup_cause or None
    if dial_status == "BUSY":
        reason = FailureReason.BUSY
    elif dial_status == "NOANSWER":
        reason = FailureReason.NO_ANSWER
    elif dial_status == "CONGESTION":
        reason = FailureReason.CONGESTION
    elif dial_status == "CHANUNAVAIL":
        reason = {21: FailureReason.REJECTED, 1: FailureReason.INVALID_NUMBER,
                  28: FailureReason.INVALID_NUMBER}.get(cause or 0, FailureReason.CONGESTION)
    elif dial_status == "CANCEL":
        reason = FailureReason.CANCELLED
    elif originate_reason == "3":
        reason = FailureReason.NO_ANSWER
    elif originate_reason == "5" or hangup_cause == 17:
        reason = FailureReason.BUSY
    elif originate_reason == "8" or hangup_cause == 34:
        reason = FailureReason.CONGESTION
    elif hangup_cause in (1, 28):
        reason = FailureReason.INVALID_NUMBER
    elif hangup_cause == 21:
        reason = FailureReason.REJECTED
    else:
        reason = FailureReason.ERROR
    return reason, cause or DEFAULT_CAUSES.get(reason)


def originate_outcome(answered: bool, originate_reason: str | None, dial_status: str | None,
                      dial_cause: int | None) -> str:
    """A dial-out's outcome as the metrics count it: answered, busy, no_answer, rejected,
    unavailable, congestion, cancelled or failed."""
    if answered:
        return "answered"
    if dial_status == "CHANUNAVAIL":
        return "rejected" if dial_cause == CAUSE_CALL_REJECTED else "unavailable"
    if dial_status in DIAL_STATUS_OUTCOMES and dial_status != "ANSWER":
        return DIAL_STATUS_OUTCOMES[dial_status]
    return ORIGINATE_REASON_OUTCOMES.get(originate_reason or "", "failed")



def dialin_profile(role: Role, waiting_for_chair: bool) -> str:
    """The bridge profile of an admitted caller: a guest of a permanent room waits for the chair."""
    return WAITING_GUEST_PROFILE if waiting_for_chair and role == Role.GUEST else PROFILES[role]


def room_entry(room: str, profile: str, participants: int) -> dict[str, str]:
    """The channel variables that put an admitted caller into the room (the dialplan runs
    ConfBridge with them), in the order they are set, the room last: the bridge profile and the
    room's seats (the planned participants plus the announcer and the recorder)."""
    return {PROFILE_VARIABLE: profile, MAX_MEMBERS_VARIABLE: str(participants + ROOM_EXTRA_MEMBERS),
            ROOM_VARIABLE: room}
