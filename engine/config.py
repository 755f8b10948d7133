"""Engine settings, read once from the environment (VECHE_* variables) so every entry point agrees."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from engine.domain import pins
from engine.domain.errors import ConfigError
from engine.domain.planning import EXTEND_CAP_MINUTES

DEFAULT_AMI_SECRET = "veche-dev-secret"


def _short_prefixes(raw: str) -> tuple[str, ...]:
    """VECHE_SHORT_NUMBER_PREFIXES: comma-separated digit prefixes of internal short numbers."""
    prefixes = tuple(p.strip() for p in raw.split(",") if p.strip())
    for prefix in prefixes:
        if not prefix.isascii() or not prefix.isdigit() or prefix.startswith("0") or len(prefix) > 6:
            raise ConfigError(f"VECHE_SHORT_NUMBER_PREFIXES: {prefix!r} is not 1 to 6 digits without a leading 0")
    return prefixes


@dataclass(frozen=True)
class AmiTarget:
    """Where the engine's AMI adapter logs in."""

    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "veche"
    secret: str = DEFAULT_AMI_SECRET

    @classmethod
    def from_url(cls, url: str) -> AmiTarget:
        """Parse ``ami://user:secret@host:port``."""
        parts = urlsplit(url)
        if parts.scheme != "ami" or not parts.hostname or not parts.username:
            raise ConfigError(f"ASTERISK_AMI_URL must look like ami://user:secret@host:5038, got {url!r}")
        return cls(
            host=parts.hostname,
            port=parts.port or 5038,
            username=unquote(parts.username),
            secret=unquote(parts.password or ""),
        )


@dataclass(frozen=True)
class NodeSpec:
    """One Asterisk media node the engine drives: its id, AMI link, SIP address and capacity."""

    node_id: str
    ami: AmiTarget
    sip_host: str
    sip_port: int
    capacity: int  # participants the node carries at most

    @property
    def ami_url(self) -> str:
        """The AMI link without its secret (what the operator pages and the node row show)."""
        return f"ami://{self.ami.username}@{self.ami.host}:{self.ami.port}"

    @property
    def sip_address(self) -> str:
        return f"{self.sip_host}:{self.sip_port}"


def local_node_host(index: int) -> str:
    """The loopback address of local media node ``index`` (1, 2, ...): 127.0.0.11, 127.0.0.12, ..."""
    return f"127.0.0.{10 + index}"


@dataclass(frozen=True)
class Settings:
    """Everything configurable about one engine process."""

    database_url: str | None = None
    ami: AmiTarget = field(default_factory=AmiTarget)
    ami_external: bool = False  # True when ASTERISK_AMI_URL points at an operator's own PBX
    node_id: str = "ast1"  # the only node's id; with several nodes they are ast1, ast2, ...
    node_count: int = 1  # media nodes (VECHE_NODES); more than one puts Kamailio in front of them
    node_hosts: tuple[str, ...] = ()  # the nodes' hosts (VECHE_NODE_HOSTS; default 127.0.0.11, 127.0.0.12, ...)
    node_capacity: int = 300  # participants per node (VECHE_NODE_CAPACITY)
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    rtp_start: int = 20000
    rtp_end: int = 20999
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    trunk_target: str = "127.0.0.1:5070"
    access_number: str = "7000"
    access_language: str = "ru"  # the voice language of the IVR until the caller's conference is known
    short_number_length: int = 4
    short_number_prefixes: tuple[str, ...] = ()  # internal numbers: these prefixes only (none: no short numbers)
    pin_length: int = 6
    conference_number_length: int = 6
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "veche")
    run_dir: Path = field(default_factory=lambda: Path.cwd() / "run")
    ring_timeout: int = 30
    calls_per_second: float = 20.0
    max_concurrent_calls: int = 200  # dial-outs calling, ringing or connected at once, all accounts together
    # conferences: retries, deadline warning, extension cap, test time scale
    retry_busy: int = 0  # extra dial attempts after a busy callee
    retry_no_answer: int = 0  # extra dial attempts after no answer
    retry_delay_seconds: float = 30.0
    warning_seconds: float = 120.0  # the room hears the deadline warning this long before the end
    extend_cap_minutes: int = EXTEND_CAP_MINUTES  # total extension (manual and auto) per conference
    idempotency_hours: int = 24  # how long an Idempotency-Key's answer is kept for replay
    series_ahead: int = 5  # upcoming occurrences of a recurring series kept as scheduled conferences
    join_early_minutes: int = 10  # dial-in may join this long before the start
    minute_seconds: float = 60.0  # length of a conference "minute" (tests shrink it)
    number_plan_country: str = "375"
    number_plan_blocked_prefixes: tuple[str, ...] = ("375902",)  # premium rate
    test_mode: bool = False
    secret_key: str = ""
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    mail_from: str = "veche@localhost"
    smtp_timeout: float = 30.0
    smtp_tls: bool = False  # implicit TLS (port 465); smtp_starttls upgrades a plain connection instead
    smtp_ca_file: str | None = None  # CA bundle that signs the SMTP server's certificate (default: system)
    mail_max_attempts: int = 5  # SMTP tries before a message is marked failed
    mail_retry_base_seconds: float = 30.0  # back-off after the first failure, doubled per try
    mail_retry_max_seconds: float = 3600.0
    mail_lease_seconds: float = 300.0  # a 'sending' row whose worker died is retried after this
    mail_poll_interval: float = 5.0  # delivery worker and reminder scan period
    reminder_late_window_seconds: int = 900  # a reminder later than this (engine was down) is skipped
    sms_gateway: str | None = None  # no SMS gateway configured: the SMS channel reports "not available"
    log_json: bool = False
    ami_permit: str = "127.0.0.1"  # the only address the AMI user may log in from (manager.conf permit)
    production: bool = False  # refuse development defaults (VECHE_PRODUCTION=1)
    api_requests_per_minute: int = 1200  # per account, with a burst of the same size (VECHE_API_RATE)
    # FastAGI: the dialplan passes this secret on every AGI call ("" = not configured: every
    # session is refused); Settings() made in code get a random one, shared by render and engine
    agi_secret: str = field(default_factory=lambda: secrets.token_hex(32), repr=False)
    agi_allow: tuple[str, ...] = ()  # source networks allowed to open sessions (empty: any)
    agi_max_sessions: int = 200  # sessions at once; more are refused and counted
    agi_header_timeout: float = 5.0  # seconds from connect to the blank line ending the header block
    agi_header_bytes: int = 8192  # largest header block
    agi_answer_bytes: int = 4096  # longest answer line to a command
    agi_session_seconds: float = 600.0  # longest life of one session
    # dial-in PIN guessing: wrong PINs on one conference number within the failure window that
    # close PIN entry for the cool-down, and the failures of withheld callers (one shared counter)
    # after which every withheld call is refused
    pin_lockout_after: int = 20
    pin_lockout_seconds: int = 900
    withheld_block_after: int = 5
    trusted_proxies: tuple[str, ...] = ()  # peers whose X-Forwarded-For is believed (VECHE_TRUSTED_PROXIES)
    sse_streams_per_account: int = 10  # open SSE streams per account (VECHE_SSE_STREAMS)
    captcha_max: int = 10000  # live login CAPTCHAs kept at most (VECHE_CAPTCHA_MAX)
    metrics_host: str = "127.0.0.1"  # the Prometheus listener, apart from the web port
    metrics_port: int = 9464
    metrics_token: str = ""  # when set, /metrics needs Authorization: Bearer <token>
    recording_dir: Path | None = None  # converted recordings (VECHE_RECORDING_DIR; None: run_dir/recordings)
    recording_retention_days: int = 30  # recordings older than this are deleted (VECHE_RECORDING_RETENTION_DAYS)
    quality_sample_seconds: int = 5  # participants' network numbers kept (VECHE_QUALITY_SAMPLE_SECONDS)
    load_sample_seconds: int = 60  # load counted this often (VECHE_LOAD_SAMPLE_SECONDS)
    sample_retention_days: int = 30  # older samples deleted (VECHE_SAMPLE_RETENTION_DAYS)
    # no VECHE_SMTP_HOST: `run` keeps mail in run/mail/ through an embedded SMTP sink (refused in production)
    mail_sink: bool = False
    public_url: str = ""  # the portal's address in mail links (VECHE_PUBLIC_URL; default http://web_host:web_port)
    prompts_dir: Path | None = None  # the operator's prompt files (VECHE_PROMPTS_DIR; None: run_dir/prompts)
    prompts_node_dir: str = ""  # the same directory as the nodes see it (VECHE_PROMPTS_NODE_DIR; "": prompts_dir)
    prompt_max_bytes: int = 2 * 1024 * 1024  # largest prompt upload (VECHE_PROMPT_MAX_BYTES)
    prompt_max_seconds: int = 30  # longest prompt upload (VECHE_PROMPT_MAX_SECONDS)
    # an engine pair on one PostgreSQL (engine/services/leadership.py): this engine's id ("": the
    # engine runs alone, always active, without the leader lease), the lease's length and how
    # often the active engine renews it (and a standby asks for it)
    engine_id: str = ""
    lease_seconds: float = 5.0
    lease_renew_seconds: float = 1.0
    agi_addresses: tuple[str, ...] = ()  # host:port the dialplan tries in turn (empty: agi_host:agi_port)

    @property
    def portal_url(self) -> str:
        """The portal's base address for links in e-mail, without a trailing slash."""
        return (self.public_url or f"http://{self.web_host}:{self.web_port}").rstrip("/")

    @property
    def rootfs(self) -> Path:
        return self.cache_dir / "rootfs"

    @property
    def recordings(self) -> Path:
        """Where converted recordings are kept."""
        return self.recording_dir or self.run_dir / "recordings"

    @property
    def prompts(self) -> Path:
        """Where the engine writes the operator's prompt files (<language>/<name>.wav)."""
        return self.prompts_dir or self.run_dir / "prompts"

    @property
    def prompts_on_node(self) -> str:
        """The prompts directory as Asterisk on a node opens it."""
        return self.prompts_node_dir or str(self.prompts)

    @property
    def several_nodes(self) -> bool:
        """More than one media node: Kamailio is the SIP front door at sip_host:sip_port."""
        return self.node_count > 1

    @property
    def media_nodes(self) -> tuple[NodeSpec, ...]:
        """Every media node the engine drives. One node is the AMI target and SIP address of these
        settings; several nodes are ast1, ast2, ... on their own hosts with the same AMI and SIP
        ports (each node a machine of its own)."""
        if not self.several_nodes:
            return (NodeSpec(self.node_id, self.ami, self.sip_host, self.sip_port, self.node_capacity),)
        hosts = self.node_hosts or tuple(local_node_host(k) for k in range(1, self.node_count + 1))
        return tuple(NodeSpec(f"ast{k}", replace(self.ami, host=host), host, self.sip_port, self.node_capacity)
                     for k, host in enumerate(hosts, 1))

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        base = cls()

        def get(name: str, default: object) -> str:
            return env.get(f"VECHE_{name}", str(default))

        def get_int(name: str, default: int) -> int:
            raw = get(name, default)
            try:
                return int(raw)
            except ValueError:
                raise ConfigError(f"VECHE_{name} must be a whole number, got {raw!r}") from None

        def get_float(name: str, default: float) -> float:
            raw = get(name, default)
            try:
                return float(raw)
            except ValueError:
                raise ConfigError(f"VECHE_{name} must be a number of seconds, got {raw!r}") from None

        def positive(name: str, default: int) -> int:
            value = get_int(name, default)
            if value < 1:
                raise ConfigError(f"VECHE_{name} must be at least 1, got {value}")
            return value

        ami_url = env.get("ASTERISK_AMI_URL")
        node_hosts = tuple(h.strip() for h in get("NODE_HOSTS", "").split(",") if h.strip())
        node_count = positive("NODES", len(node_hosts) or base.node_count)
        if node_hosts and node_count != len(node_hosts):
            raise ConfigError(f"VECHE_NODES is {node_count} but VECHE_NODE_HOSTS names {len(node_hosts)} hosts")
        node_id = get("NODE_ID", base.node_id)
        if node_count > 1 and node_id != base.node_id:
            raise ConfigError(f"with several nodes their ids are ast1, ast2, ...: leave VECHE_NODE_ID unset "
                              f"(got {node_id!r})")
        ami = AmiTarget.from_url(ami_url) if ami_url else AmiTarget(
            port=get_int("AMI_PORT", 5038),
            username=get("AMI_USER", "veche"),
            secret=get("AMI_SECRET", DEFAULT_AMI_SECRET),
        )
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            ami=ami,
            ami_external=bool(ami_url),
            node_id=node_id,
            node_count=node_count,
            node_hosts=node_hosts,
            node_capacity=positive("NODE_CAPACITY", base.node_capacity),
            web_host=get("WEB_HOST", base.web_host),
            web_port=get_int("WEB_PORT", base.web_port),
            sip_host=get("SIP_HOST", base.sip_host),
            sip_port=get_int("SIP_PORT", base.sip_port),
            rtp_start=get_int("RTP_START", base.rtp_start),
            rtp_end=get_int("RTP_END", base.rtp_end),
            agi_host=get("AGI_HOST", base.agi_host),
            agi_port=get_int("AGI_PORT", base.agi_port),
            trunk_target=get("TRUNK_TARGET", base.trunk_target),
            access_number=get("ACCESS_NUMBER", base.access_number),
            access_language=_language("VECHE_ACCESS_LANGUAGE", get("ACCESS_LANGUAGE", base.access_language)),
            short_number_length=get_int("SHORT_NUMBER_LENGTH", base.short_number_length),
            short_number_prefixes=_short_prefixes(get("SHORT_NUMBER_PREFIXES", "")),
            pin_length=check_pin_length(get_int("PIN_LENGTH", base.pin_length), "VECHE_PIN_LENGTH"),
            cache_dir=Path(get("CACHE_DIR", base.cache_dir)).expanduser(),
            run_dir=Path(get("RUN_DIR", base.run_dir)).expanduser(),
            ring_timeout=get_int("RING_TIMEOUT", base.ring_timeout),
            calls_per_second=float(get_int("CALLS_PER_SECOND", int(base.calls_per_second))),
            max_concurrent_calls=positive("MAX_CONCURRENT_CALLS", base.max_concurrent_calls),
            retry_busy=get_int("RETRY_BUSY", base.retry_busy),
            retry_no_answer=get_int("RETRY_NO_ANSWER", base.retry_no_answer),
            warning_seconds=float(get_int("WARNING_SECONDS", int(base.warning_seconds))),
            extend_cap_minutes=get_int("EXTEND_CAP_MINUTES", base.extend_cap_minutes),
            idempotency_hours=max(1, get_int("IDEMPOTENCY_HOURS", base.idempotency_hours)),
            series_ahead=positive("SERIES_AHEAD", base.series_ahead),
            join_early_minutes=get_int("JOIN_EARLY_MINUTES", base.join_early_minutes),
            test_mode=get("TEST_MODE", "0") in ("1", "true", "yes"),
            secret_key=get("SECRET_KEY", ""),
            smtp_host=get("SMTP_HOST", base.smtp_host),
            smtp_port=get_int("SMTP_PORT", base.smtp_port),
            smtp_user=env.get("VECHE_SMTP_USER") or None,
            smtp_password=env.get("VECHE_SMTP_PASSWORD") or None,
            smtp_starttls=get("SMTP_STARTTLS", "0") in ("1", "true", "yes"),
            mail_from=get("MAIL_FROM", base.mail_from),
            smtp_tls=get("SMTP_TLS", "0") in ("1", "true", "yes"),
            smtp_ca_file=env.get("VECHE_SMTP_CA_FILE") or None,
            mail_max_attempts=get_int("MAIL_MAX_ATTEMPTS", base.mail_max_attempts),
            reminder_late_window_seconds=get_int("REMINDER_LATE_WINDOW", base.reminder_late_window_seconds),
            sms_gateway=env.get("VECHE_SMS_GATEWAY") or None,
            log_json=get("LOG_JSON", "0") in ("1", "true", "yes"),
            ami_permit=_ipv4(get("AMI_PERMIT", base.ami_permit), "VECHE_AMI_PERMIT"),
            production=get("PRODUCTION", "0") in ("1", "true", "yes"),
            api_requests_per_minute=max(1, get_int("API_RATE", base.api_requests_per_minute)),
            agi_secret=_agi_secret(env.get("VECHE_AGI_SECRET", "")),
            agi_allow=_networks(get("AGI_ALLOW", ""), "VECHE_AGI_ALLOW"),
            agi_max_sessions=max(1, get_int("AGI_MAX_SESSIONS", base.agi_max_sessions)),
            agi_header_timeout=float(max(1, get_int("AGI_HEADER_TIMEOUT", int(base.agi_header_timeout)))),
            agi_session_seconds=float(max(10, get_int("AGI_SESSION_SECONDS", int(base.agi_session_seconds)))),
            pin_lockout_after=_at_least(1, get_int("PIN_LOCKOUT_AFTER", base.pin_lockout_after),
                                        "VECHE_PIN_LOCKOUT_AFTER"),
            pin_lockout_seconds=_at_least(1, get_int("PIN_LOCKOUT_SECONDS", base.pin_lockout_seconds),
                                          "VECHE_PIN_LOCKOUT_SECONDS"),
            withheld_block_after=_at_least(1, get_int("WITHHELD_BLOCK_AFTER", base.withheld_block_after),
                                           "VECHE_WITHHELD_BLOCK_AFTER"),
            trusted_proxies=_networks(get("TRUSTED_PROXIES", ""), "VECHE_TRUSTED_PROXIES"),
            sse_streams_per_account=max(1, get_int("SSE_STREAMS", base.sse_streams_per_account)),
            captcha_max=max(10, get_int("CAPTCHA_MAX", base.captcha_max)),
            metrics_host=get("METRICS_HOST", base.metrics_host),
            metrics_port=get_int("METRICS_PORT", base.metrics_port),
            metrics_token=get("METRICS_TOKEN", ""),
            mail_sink=not env.get("VECHE_SMTP_HOST"),
            public_url=get("PUBLIC_URL", ""),
            recording_dir=Path(env["VECHE_RECORDING_DIR"]).expanduser() if env.get("VECHE_RECORDING_DIR") else None,
            recording_retention_days=positive("RECORDING_RETENTION_DAYS", base.recording_retention_days),
            quality_sample_seconds=positive("QUALITY_SAMPLE_SECONDS", base.quality_sample_seconds),
            load_sample_seconds=positive("LOAD_SAMPLE_SECONDS", base.load_sample_seconds),
            sample_retention_days=positive("SAMPLE_RETENTION_DAYS", base.sample_retention_days),
            prompts_dir=Path(env["VECHE_PROMPTS_DIR"]).expanduser() if env.get("VECHE_PROMPTS_DIR") else None,
            prompts_node_dir=get("PROMPTS_NODE_DIR", ""),
            prompt_max_bytes=positive("PROMPT_MAX_BYTES", base.prompt_max_bytes),
            prompt_max_seconds=positive("PROMPT_MAX_SECONDS", base.prompt_max_seconds),
            engine_id=_engine_id(get("ENGINE_ID", "")),
            **_lease_terms(get_float("LEASE_SECONDS", base.lease_seconds),
                           get_float("LEASE_RENEW_SECONDS", base.lease_renew_seconds)),
            agi_addresses=_agi_addresses(get("AGI_ADDRESSES", "")),
        )

    @property
    def agi_targets(self) -> tuple[str, ...]:
        """The FastAGI addresses (host:port) the rendered dialplan tries, in this order."""
        return self.agi_addresses or (f"{self.agi_host}:{self.agi_port}",)

    def refuse_mail_sink(self) -> None:
        """A production engine sends real mail: without VECHE_SMTP_HOST it refuses to start."""
        if self.mail_sink and self.production:
            raise ConfigError("VECHE_SMTP_HOST is not set: a production engine does not keep its mail in the "
                              "local sink (run/mail); set VECHE_SMTP_HOST to your mail server")

    def refuse_default_secrets(self) -> None:
        """Outside test mode, no development default may guard a real PBX or a production engine
        (one-line ConfigError). ``python -m engine run`` replaces the defaults with generated
        secrets when it starts its own Asterisk (see ``with_generated_secrets``)."""
        if self.test_mode:
            return
        default_ami = self.ami.secret in ("", DEFAULT_AMI_SECRET)
        if default_ami and self.ami_external:
            raise ConfigError("ASTERISK_AMI_URL uses the default (or an empty) AMI secret: "
                              "give the PBX's manager user a secret of its own")
        if default_ami and self.production:
            raise ConfigError("VECHE_AMI_SECRET is the development default: set a long random secret in production")
        if not self.secret_key and self.production:
            raise ConfigError("VECHE_SECRET_KEY is empty: set 64 random hex characters in production")
        if len(self.agi_secret) < 32 and (self.ami_external or self.production):
            raise ConfigError("VECHE_AGI_SECRET is empty or short: set 64 random hex characters (the dialplan "
                              "passes it on every FastAGI call)")

    def with_generated_secrets(self) -> Settings:
        """For a development engine with its own Asterisk: replace the default AMI secret and an
        empty secret key by random ones kept in ``run_dir/secrets.json`` (mode 0600), so they stay
        the same across restarts. Settings given explicitly are kept."""
        if self.ami_external or self.production:
            return self
        path = self.run_dir / "secrets.json"
        stored: dict[str, str] = {}
        if path.exists():
            try:
                stored = json.loads(path.read_text())
            except ValueError:
                stored = {}
        changed = False
        for key in ("ami_secret", "secret_key", "agi_secret"):
            if not isinstance(stored.get(key), str) or len(stored[key]) < 32:
                stored[key] = secrets.token_hex(32)
                changed = True
        if changed:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                json.dump(stored, handle)
        ami = self.ami if self.ami.secret not in ("", DEFAULT_AMI_SECRET) else replace(
            self.ami, secret=stored["ami_secret"])
        return replace(self, ami=ami, secret_key=self.secret_key or stored["secret_key"],
                       agi_secret=self.agi_secret or stored["agi_secret"])


def check_pin_length(length: int, name: str) -> int:
    """PINs shorter than engine.domain.pins.PIN_MIN_LENGTH are refused at start, never used."""
    try:
        return pins.check_pin_length(length)
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc} (PINs are at least {pins.PIN_MIN_LENGTH} digits; "
                          "the length may be raised, not lowered)") from None


def _at_least(minimum: int, value: int, name: str) -> int:
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _ipv4(value: str, name: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value.strip()))
    except ValueError:
        raise ConfigError(f"{name} must be one IPv4 address (e.g. 127.0.0.1), got {value!r}") from None


def _networks(value: str, name: str) -> tuple[str, ...]:
    """Comma-separated addresses or networks (``10.0.0.5, 192.168.1.0/24, ::1``), normalised."""
    networks = []
    for item in value.split(","):
        if not item.strip():
            continue
        try:
            networks.append(str(ipaddress.ip_network(item.strip(), strict=False)))
        except ValueError:
            raise ConfigError(f"{name} must list IP addresses or networks (e.g. 10.0.0.5,192.168.1.0/24), "
                              f"got {item.strip()!r}") from None
    return tuple(networks)


def _agi_secret(value: str) -> str:
    """The secret goes into the dialplan as an AGI argument: letters, digits, ``-`` and ``_`` only."""
    value = value.strip()
    if not re.fullmatch(r"[A-Za-z0-9_\-]{0,200}", value):
        raise ConfigError("VECHE_AGI_SECRET may hold only letters, digits, '-' and '_' (e.g. 64 hex characters)")
    return value


def _language(name: str, value: str) -> str:
    """A voice language every node carries (engine.domain.speech.LANGUAGES)."""
    from engine.domain.speech import LANGUAGES

    if value not in LANGUAGES:
        raise ConfigError(f"{name} must be one of {', '.join(LANGUAGES)}, got {value!r}")
    return value


def _engine_id(value: str) -> str:
    """An engine's id is stored as the lease holder and shown in metrics labels."""
    value = value.strip()
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{0,64}", value):
        raise ConfigError(f"VECHE_ENGINE_ID may hold only letters, digits, '.', '-' and '_', got {value!r}")
    return value


def _lease_terms(lease: float, renew: float) -> dict[str, float]:
    """The lease must outlive two missed renewals, so one slow round trip never loses it."""
    if renew <= 0 or lease < 2 * renew:
        raise ConfigError(f"VECHE_LEASE_SECONDS ({lease:g}) must be at least twice VECHE_LEASE_RENEW_SECONDS "
                          f"({renew:g}), and both positive")
    return {"lease_seconds": lease, "lease_renew_seconds": renew}


def _agi_addresses(value: str) -> tuple[str, ...]:
    """Comma-separated host:port of every engine's FastAGI server, as the dialplan calls them."""
    addresses = tuple(item.strip() for item in value.split(",") if item.strip())
    for address in addresses:
        if not re.fullmatch(r"[A-Za-z0-9.\-]{1,200}:[0-9]{1,5}", address):
            raise ConfigError(f"VECHE_AGI_ADDRESSES must list host:port pairs (e.g. 10.0.0.5:4573,10.0.0.6:4573), "
                              f"got {address!r}")
    return addresses
