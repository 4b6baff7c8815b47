"""Every error text hearsay sends to a RESP client, in one place, in Redis's own wording.

Clients and their test suites match on these strings (redis-py maps the first word to an
exception class; people grep for the rest), so they are copied from Redis 7 (``networking.c``,
``server.c``, ``acl.c``) and RedisBloom (``rebloom.c``, ``rm_cms.c``) rather than paraphrased.
A text is the whole error line *without* the leading ``-``: the first word is the error code
(``ERR``, ``WRONGTYPE``, ``NOAUTH`` ...). Only constants and tiny formatting helpers live here;
:mod:`hearsay.resp.replies` turns a text into bytes.

Texts that Redis builds from client bytes (command names, arguments) keep those bytes exactly:
:func:`client_text` decodes with ``surrogateescape`` so that encoding the reply with the same
error handler gives back the client's raw bytes, as Redis's ``%s`` does.
"""

from __future__ import annotations

# --- protocol errors (networking.c); the connection is closed after sending one ---------------
PROTOCOL_INVALID_MULTIBULK_LENGTH = "ERR Protocol error: invalid multibulk length"
PROTOCOL_INVALID_BULK_LENGTH = "ERR Protocol error: invalid bulk length"
PROTOCOL_UNAUTHENTICATED_MULTIBULK_LENGTH = "ERR Protocol error: unauthenticated multibulk length"
PROTOCOL_UNAUTHENTICATED_BULK_LENGTH = "ERR Protocol error: unauthenticated bulk length"
PROTOCOL_TOO_BIG_MULTIBULK_COUNT = "ERR Protocol error: too big mbulk count string"
PROTOCOL_TOO_BIG_BULK_COUNT = "ERR Protocol error: too big bulk count string"
PROTOCOL_TOO_BIG_INLINE = "ERR Protocol error: too big inline request"
PROTOCOL_UNBALANCED_QUOTES = "ERR Protocol error: unbalanced quotes in request"
PROTOCOL_EXPECTED_DOLLAR = "ERR Protocol error: expected '$', got '{}'"
# Redis closes such a client silently (client-query-buffer-limit); we say why before closing.
PROTOCOL_QUERY_BUFFER_LIMIT = "ERR Protocol error: query buffer limit exceeded"

# --- command table (server.c processCommand) ---------------------------------------------------
WRONG_NUMBER_OF_ARGS = "ERR wrong number of arguments for '{}' command"
UNKNOWN_COMMAND = "ERR unknown command '{}', with args beginning with: {}"
UNKNOWN_SUBCOMMAND = "ERR unknown subcommand '{}'. Try {} HELP."
NOT_SUPPORTED = "ERR command '{}' is not supported by hearsay"

# --- generic argument errors (shared.* in server.c, object.c, t_string.c) --------------------
SYNTAX_ERROR = "ERR syntax error"
NOT_AN_INTEGER = "ERR value is not an integer or out of range"
INVALID_CLIENT_ID = "ERR Invalid client ID"
NO_SUCH_CLIENT = "ERR No such client"
UNKNOWN_CLIENT_TYPE = "ERR Unknown client type '{}'"
OVERFLOW = "ERR increment or decrement would overflow"
INVALID_EXPIRE_TIME = "ERR invalid expire time in '{}' command"
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
NO_SUCH_NODE = "ERR no such node"
NOT_A_NODE_ID = "ERR node id must be {} lowercase hex digits (INFO's run_id)"
FORGET_SELF = "ERR a node cannot forget itself"
FORGET_TIME = "ERR the departure time must be a unix time in ms, not in the future"
TIMEOUT_NOT_INTEGER = "ERR timeout is not an integer or out of range"
TIMEOUT_NEGATIVE = "ERR timeout is negative"
CONFIG_READ_ONLY = (
    "ERR CONFIG SET is not supported: hearsay takes its settings at start-up "
    "(flags or --config FILE)"
)
INVALID_CURSOR = "ERR invalid cursor"

# --- DUMP / RESTORE and OBJECT (cluster.c, object.c) ------------------------------------------
DUMP_PAYLOAD_WRONG = "ERR DUMP payload version or checksum are wrong"
DUMP_BAD_DATA = "ERR Bad data format"
BUSYKEY = "BUSYKEY Target key name already exists."
RESTORE_INVALID_TTL = "ERR Invalid TTL value, must be >= 0"
RESTORE_INVALID_IDLETIME = "ERR Invalid IDLETIME value, must be >= 0"
RESTORE_INVALID_FREQ = "ERR Invalid FREQ value, must be >= 0 and <= 255"
OBJECT_FREQ_NOT_TRACKED = (
    "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note "
    "that when switching between policies at runtime LRU and LFU data will take some time to "
    "adjust."
)
SLOWLOG_COUNT = "ERR count should be greater than or equal to -1"
MONITOR_UNAVAILABLE = "ERR MONITOR needs a client connection to stream to"
OBJECT_IDLETIME_NOT_TRACKED = (
    "ERR hearsay keeps no access times: OBJECT IDLETIME is not tracked (no key is evicted)"
)

# --- connection and authentication (acl.c, networking.c, db.c) --------------------------------
NOAUTH = "NOAUTH Authentication required."
NOAUTH_HELLO = (
    "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
    "HELLO AUTH <user> <pass> option can be used to authenticate the client and select "
    "the RESP protocol version at the same time"
)
WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."
AUTH_NOT_CONFIGURED = (
    "ERR AUTH <password> called without any password configured for the default user. "
    "Are you sure your configuration is correct?"
)
NOPROTO = "NOPROTO unsupported protocol version"
HELLO_PROTOCOL_NOT_INTEGER = "ERR Protocol version is not an integer or out of range"
HELLO_SYNTAX = "ERR Syntax error in HELLO option '{}'"
DB_INDEX_OUT_OF_RANGE = "ERR DB index is out of range"
CLIENT_NAME_INVALID = "ERR Client names cannot contain spaces, newlines or special characters."
CLIENT_SETINFO_UNRECOGNIZED = "ERR Unrecognized option '{}'"
CLIENT_SETINFO_INVALID = "ERR {} cannot contain spaces, newlines or special characters."

# --- Redis commands hearsay deliberately does not offer ----------------------------------------
# Every command of Redis 7's and 8's tables that hearsay does not register answers NOT_SUPPORTED
# (naming hearsay, and the alternative where there is one) rather than "unknown command", so the
# reason is clear; only names Redis does not know either get UNKNOWN_COMMAND. A command that is
# registered in the command table always wins over this list (a family added later simply
# registers its commands). Subcommands are ``CONTAINER|SUB``. tests/resp/test_redis_coverage.py
# checks this against a real redis-server's COMMAND LIST.
_NO_STRINGS = "hearsay stores no plain strings: INCR/INCRBY for counters, SET/GET for HLL bytes"
_NO_COLLECTIONS = (
    "hearsay holds sketches, not collections: PFADD/PFCOUNT count distinct members, "
    "BF.ADD/BF.EXISTS test membership, CMS.INCRBY/CMS.QUERY count frequencies"
)
_NO_SCRIPTS = "hearsay runs no scripts: MULTI/EXEC runs several commands at once"
_NO_PUBSUB = "hearsay has no pub/sub"
_NO_REPLICATION = (
    "every hearsay node is a primary; nodes replicate by gossip (HEARSAY.MEMBERS, HEARSAY.JOIN)"
)
_SAVED_CONTINUOUSLY = "hearsay writes every change to its data directory continuously (--fsync)"
_COPY = "DUMP the key, RESTORE it under the new name, DEL the old one"
_ONE_DB = "hearsay has one database (0)"
_NO_BLOCKING = "hearsay has no blocking commands"
_NO_ACL = "hearsay has one user, default (AUTH, --requirepass)"

_UNSUPPORTED_GROUPS: dict[str, tuple[str, ...]] = {
    _NO_STRINGS: (
        "APPEND", "BITCOUNT", "BITFIELD", "BITFIELD_RO", "BITOP", "BITPOS", "GETBIT", "GETDEL",
        "GETEX", "GETRANGE", "GETSET", "LCS", "MSET", "MSETNX", "PSETEX", "SETBIT", "SETEX",
        "SETNX", "SETRANGE", "SUBSTR",
    ),
    "hearsay counters hold integers: use INCRBY": ("INCRBYFLOAT", "HINCRBYFLOAT"),
    _NO_COLLECTIONS: (
        # lists
        "LINDEX", "LINSERT", "LLEN", "LMOVE", "LMPOP", "LPOP", "LPOS", "LPUSH", "LPUSHX",
        "LRANGE", "LREM", "LSET", "LTRIM", "RPOP", "RPOPLPUSH", "RPUSH", "RPUSHX",
        # sets
        "SADD", "SCARD", "SDIFF", "SDIFFSTORE", "SINTER", "SINTERCARD", "SINTERSTORE",
        "SISMEMBER", "SMEMBERS", "SMISMEMBER", "SMOVE", "SPOP", "SRANDMEMBER", "SREM", "SSCAN",
        "SUNION", "SUNIONSTORE",
        # hashes (Redis 7.4 and 8 added the field-expiry ones)
        "HDEL", "HEXISTS", "HGET", "HGETALL", "HINCRBY", "HKEYS", "HLEN", "HMGET", "HMSET",
        "HRANDFIELD", "HSCAN", "HSET", "HSETNX", "HSTRLEN", "HVALS", "HEXPIRE", "HEXPIREAT",
        "HEXPIRETIME", "HPERSIST", "HPEXPIRE", "HPEXPIREAT", "HPEXPIRETIME", "HPTTL", "HTTL",
        "HGETDEL", "HGETEX", "HSETEX",
        # sorted sets
        "ZADD", "ZCARD", "ZCOUNT", "ZDIFF", "ZDIFFSTORE", "ZINCRBY", "ZINTER", "ZINTERCARD",
        "ZINTERSTORE", "ZLEXCOUNT", "ZMPOP", "ZMSCORE", "ZPOPMAX", "ZPOPMIN", "ZRANDMEMBER",
        "ZRANGE", "ZRANGEBYLEX", "ZRANGEBYSCORE", "ZRANGESTORE", "ZRANK", "ZREM",
        "ZREMRANGEBYLEX", "ZREMRANGEBYRANK", "ZREMRANGEBYSCORE", "ZREVRANGE", "ZREVRANGEBYLEX",
        "ZREVRANGEBYSCORE", "ZREVRANK", "ZSCAN", "ZSCORE", "ZUNION", "ZUNIONSTORE",
        # streams
        "XACK", "XADD", "XAUTOCLAIM", "XCLAIM", "XDEL", "XGROUP", "XINFO", "XLEN", "XPENDING",
        "XRANGE", "XREVRANGE", "XSETID", "XTRIM",
        # geo
        "GEOADD", "GEODIST", "GEOHASH", "GEOPOS", "GEORADIUS", "GEORADIUS_RO",
        "GEORADIUSBYMEMBER", "GEORADIUSBYMEMBER_RO", "GEOSEARCH", "GEOSEARCHSTORE",
        # sorting, and Redis 8's vector sets
        "SORT", "SORT_RO", "VADD", "VCARD", "VDIM", "VEMB", "VGETATTR", "VINFO", "VLINKS",
        "VRANDMEMBER", "VREM", "VSETATTR", "VSIM",
    ),
    _NO_BLOCKING: (
        "BLMOVE", "BLMPOP", "BLPOP", "BRPOP", "BRPOPLPUSH", "BZMPOP", "BZPOPMAX", "BZPOPMIN",
        "XREAD", "XREADGROUP",
    ),
    _NO_SCRIPTS: (
        "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "SCRIPT", "FUNCTION", "FCALL", "FCALL_RO",
    ),
    _NO_PUBSUB: (
        "SUBSCRIBE", "UNSUBSCRIBE", "PSUBSCRIBE", "PUNSUBSCRIBE", "SSUBSCRIBE", "SUNSUBSCRIBE",
        "PUBLISH", "SPUBLISH", "PUBSUB",
    ),
    _NO_REPLICATION: (
        "CLUSTER", "READONLY", "READWRITE", "ASKING", "REPLICAOF", "SLAVEOF", "SYNC", "PSYNC",
        "REPLCONF", "FAILOVER", "MIGRATE", "RESTORE-ASKING",
    ),
    "hearsay replicates by gossip: WAIT counts the peers that hold a write": ("WAITAOF",),
    _SAVED_CONTINUOUSLY: ("SAVE", "BGSAVE", "BGREWRITEAOF", "LASTSAVE"),
    _COPY: ("RENAME", "RENAMENX", "COPY"),
    _ONE_DB: ("MOVE", "SWAPDB"),
    _NO_ACL: ("ACL",),
    "SCAN walks the keys": ("RANDOMKEY",),
    "PTTL gives the time left": ("EXPIRETIME", "PEXPIRETIME"),
    "SLOWLOG and /metrics report latency": ("LATENCY",),
    "stop the process with SIGTERM (it flushes and leaves the cluster)": ("SHUTDOWN",),
    "": (
        "WAIT", "DEBUG", "RESET", "LOLWUT", "PFDEBUG", "PFSELFTEST",
        "WATCH", "UNWATCH", "ROLE",
        "CLIENT|PAUSE", "CLIENT|UNPAUSE", "CLIENT|REPLY", "CLIENT|TRACKING", "CLIENT|CACHING",
        "CLIENT|GETREDIR", "CLIENT|TRACKINGINFO", "CLIENT|UNBLOCK", "CLIENT|NO-EVICT",
        "CLIENT|NO-TOUCH", "CLIENT|HELP", "CONFIG|RESETSTAT", "CONFIG|REWRITE", "CONFIG|HELP",
        "COMMAND|GETKEYS", "COMMAND|GETKEYSANDFLAGS", "COMMAND|HELP", "MEMORY|DOCTOR",
        "MEMORY|STATS", "MEMORY|MALLOC-STATS", "MEMORY|HELP", "MODULE|LOAD",
        "MODULE|LOADEX", "MODULE|UNLOAD", "MODULE|HELP",
    ),
}  # fmt: skip

UNSUPPORTED_COMMANDS: dict[str, str] = {
    name: alternative for alternative, names in _UNSUPPORTED_GROUPS.items() for name in names
}
"""Upper-case name (``CONTAINER|SUB`` for a subcommand) -> the alternative ("" for none)."""

# Redis caps the argument preview of UNKNOWN_COMMAND at this many characters (server.c).
_PREVIEW_CHARS = 128


def client_text(data: bytes) -> str:
    """Client bytes as text that encodes back to the same bytes (``surrogateescape``).

    Like C's ``%s``, the text stops at the first NUL byte.
    """
    return _c_string(data).decode("utf-8", "surrogateescape")


def _c_string(data: bytes) -> bytes:
    """``data`` up to its first NUL byte, as C's ``%s`` would print it."""
    nul = data.find(b"\0")
    return data if nul < 0 else data[:nul]


def wrong_number_of_args(full_name: str) -> str:
    """``ERR wrong number of arguments for 'get' command``; subcommands as ``client|setname``."""
    return WRONG_NUMBER_OF_ARGS.format(full_name.lower())


def unknown_command(name: bytes, args: list[bytes]) -> str:
    """Redis's unknown-command text: the name and a 128-byte preview of the arguments."""
    preview = b""
    for arg in args[:_PREVIEW_CHARS]:  # each quoted argument adds at least 3 bytes
        if len(preview) >= _PREVIEW_CHARS:
            break
        preview += b"'" + _c_string(arg)[: _PREVIEW_CHARS - len(preview)] + b"' "
    return UNKNOWN_COMMAND.format(
        client_text(name[:_PREVIEW_CHARS]), preview.decode("utf-8", "surrogateescape")
    )


def unknown_subcommand(subcommand: bytes, container: str) -> str:
    """``ERR unknown subcommand 'foo'. Try CLIENT HELP.``"""
    return UNKNOWN_SUBCOMMAND.format(client_text(subcommand[:_PREVIEW_CHARS]), container.upper())


def misconf(cause: str) -> str:
    """A write refused while the data directory cannot be written (Redis's ``MISCONF``)."""
    cause = " ".join(cause.split())  # one line, whatever the OS or SQLite said
    return (
        f"MISCONF hearsay cannot write to its data directory ({cause}): writes are refused "
        "until it can; reads still work"
    )


def not_durable(cause: str) -> str:
    """A write applied just as the data directory failed: not acknowledged (``always``)."""
    cause = " ".join(cause.split())
    return (
        f"MISCONF write not durable ({cause}): it was not acknowledged; writes are refused "
        "until the data directory can be written"
    )


MULTI_NESTED = "ERR MULTI calls can not be nested"
EXEC_WITHOUT_MULTI = "ERR EXEC without MULTI"
DISCARD_WITHOUT_MULTI = "ERR DISCARD without MULTI"
WATCH_INSIDE_MULTI = "ERR WATCH inside MULTI is not allowed"
EXECABORT = "EXECABORT Transaction discarded because of previous errors."
NOT_IN_TRANSACTION = "ERR Command not allowed inside a transaction"


def not_supported(name: str) -> str:
    """``ERR command 'RENAME' is not supported by hearsay; <the alternative>`` (the
    alternative from :data:`UNSUPPORTED_COMMANDS`, when there is one)."""
    alternative = UNSUPPORTED_COMMANDS.get(name.upper(), "")
    text = NOT_SUPPORTED.format(name.upper())
    return f"{text}; {alternative}" if alternative else text


def expected_dollar(got: int) -> str:
    """``ERR Protocol error: expected '$', got 'x'`` for the byte value ``got``."""
    return PROTOCOL_EXPECTED_DOLLAR.format(client_text(bytes([got])) if got else "")


def invalid_expire_time(command: str) -> str:
    """``ERR invalid expire time in 'set' command``."""
    return INVALID_EXPIRE_TIME.format(command.lower())


# --- the sketch families (resp/families/), one section each ------------------------------------
# Redis's own texts where Redis has the case (t_string.c, hyperloglog.c), RedisBloom's for BF.*
# and CMS.*, hearsay's otherwise.

# HyperLogLog (resp/families/hll.py)
HLL_INVALID = "WRONGTYPE Key is not a valid HyperLogLog string value."
HLL_CANNOT_UNFOLD = (
    "ERR PFMERGE cannot raise a HyperLogLog's precision: the destination has {}, a source {}"
)
HLL_PRECISION_RANGE = "ERR HLL precision must be an integer in 4..18"
HLL_PRECISION_EXISTS = "ERR key already holds a HyperLogLog of precision {}"


def hll_cannot_unfold(have: int, want: int) -> str:
    """PFMERGE into a destination of precision ``have`` from a source of ``want`` < ``have``."""
    return HLL_CANNOT_UNFOLD.format(have, want)


# GET / STRLEN / SET of counters and HLL bytes (resp/families/strings.py)
HLL_GET_PRECISION = (
    "ERR key holds a HyperLogLog of precision {}: Redis's HLL bytes hold precision 14 only "
    "(use PFCOUNT)"
)
HLL_SET_PRECISION = (
    "ERR key holds a HyperLogLog of precision {}: Redis's HLL bytes hold precision 14 only"
)
SET_ONLY_HLL = (
    "ERR hearsay stores no plain strings: SET accepts only Redis HyperLogLog bytes "
    "(what GET of an HLL key returns); use INCR/INCRBY for counters"
)
SET_INVALID_HLL = "ERR SET value is not a valid Redis HyperLogLog: {}"
SET_NO_OPTIONS = "ERR SET options are not supported by hearsay (only SET key <HLL bytes>)"

# windowed keys (resp/families/window.py; WINDOW of PFRESERVE, BF.RESERVE, CMS.INITBY*)
WINDOW_SYNTAX = "ERR syntax error: WINDOW seconds [SLICES n] must come last"
WINDOW_RANGE = "ERR WINDOW must be an integer number of seconds in 1..31622400"
WINDOW_SLICES_RANGE = "ERR SLICES must be an integer in 1..64"
WINDOW_KEY_EXISTS = "ERR key exists with another type or window"
WINDOW_NO_MERGE = "ERR windowed keys cannot be merged by {}"

# vignette vectors (resp/families/vector.py)
VECTOR_INDEX = "ERR vector index is not an integer in 0..4294967295"
VECTOR_VALUE = "ERR vector value is not an integer in 0..9223372036854775807"

# Bloom filters (resp/families/bloom.py; RedisBloom's rebloom.c)
BF_NOT_FOUND = "ERR not found"
BF_ITEM_EXISTS = "ERR item exists"
BF_BAD_ERROR_RATE = "ERR bad error rate"
BF_ERROR_RATE_RANGE = "ERR (0 < error rate range < 1) "
BF_BAD_CAPACITY = "ERR bad capacity"
BF_CAPACITY_RANGE = "ERR (capacity should be larger than 0)"
BF_NO_EXPANSION = "ERR no expansion"
BF_BAD_EXPANSION = "ERR bad expansion"
BF_NONSCALING_CANNOT_EXPAND = "Nonscaling filters cannot expand"
BF_INSERT_BAD_ERROR_RATE = "Bad error rate"
BF_INSERT_BAD_CAPACITY = "Bad capacity"
BF_INSERT_BAD_EXPANSION = "Bad expansion"
BF_INSERT_UNKNOWN_ARGUMENT = "Unknown argument received"
BF_INSERT_BAD_ARGUMENT = "Bad argument received"
BF_EXPANSION_RANGE = "ERR expansion should be greater or equal to 1"
BF_FULL = "ERR non scaling filter is full"
BF_CANNOT_GROW = "ERR Bloom filter is full: it has as many sub-filters as it may (64 at most)"
BF_INFO_INVALID_VALUE = "Invalid information value"
BF_LOADCHUNK_BAD_DATA = "ERR received bad data: {}"
BF_COULD_NOT_CREATE_DETAIL = "ERR could not create filter: {}"


def bf_could_not_create(detail: str) -> str:
    """``ERR could not create filter: <why>``."""
    return BF_COULD_NOT_CREATE_DETAIL.format(detail)


# count-min sketches (resp/families/countmin.py; RedisBloom's rm_cms.c)
CMS_KEY_EXISTS = "CMS: key already exists"
CMS_KEY_MISSING = "CMS: key does not exist"
CMS_INVALID_WIDTH = "CMS: invalid width"
CMS_INVALID_DEPTH = "CMS: invalid depth"
CMS_INVALID_OVERESTIMATION = "CMS: invalid overestimation value"
CMS_INVALID_PROB = "CMS: invalid prob value"
CMS_INVALID_INIT = "CMS: invalid init arguments"
CMS_CANNOT_PARSE_NUMBER = "CMS: Cannot parse number"
CMS_NEGATIVE_NUMBER = "CMS: Number cannot be negative"
CMS_INCRBY_OVERFLOW = "CMS: INCRBY overflow"
CMS_NUMKEYS_POSITIVE = "CMS: Number of keys must be positive"
CMS_INVALID_NUMKEYS = "CMS: invalid numkeys"
CMS_WRONG_NUMBER_OF_KEYS = "CMS: wrong number of keys"
CMS_WRONG_NUMBER_OF_KEYS_WEIGHTS = "CMS: wrong number of keys/weights"
CMS_INVALID_WEIGHT = "CMS: invalid weight value"
CMS_WIDTH_DEPTH_NOT_EQUAL = "CMS: width/depth is not equal"
CMS_MERGE_OVERFLOW = "CMS: MERGE overflow"
