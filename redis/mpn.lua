#!lua name=mpn
--
-- The partner lifecycle rules as a Redis 7 Functions library (spec section 9).
--
--   FUNCTION LOAD REPLACE "$(cat redis/mpn.lua)"
--
--   FCALL mpn_put            1 <key> <json>                   [options]
--   FCALL mpn_subscribe      1 <key> <offer> <now> [benefits] [options]
--   FCALL mpn_set_auto_renew 1 <key> <offer> on|off           [options]
--   FCALL mpn_renew          1 <key> <offer> <now>            [options]
--   FCALL mpn_cancel         1 <key> <offer>                  [options]
--   FCALL mpn_consume        1 <usage key> <allowance> <amount> <period_end>
--                                                          [IDEM <token>]
--
-- options: "CHANNEL <ch>" and "REV <n>", each at most once, in either
-- order, after the positional arguments (so an offer named "channel" is
-- an offer).  REV n refuses the call with CONFLICT unless the stored rev
-- is n.
--
-- Every function validates the record it is about to store (spec section 5),
-- bumps "rev" by exactly one, sets "updated_at", SETs the key, PUBLISHes the
-- partner id on the invalidation channel (default "mpn:invalidate") and
-- returns the new rev.  Nothing is written before every check has passed, so
-- an error never leaves a half-written record.  Errors are Redis errors whose
-- text starts with a stable code: BAD_ARGUMENT, BAD_RECORD, NO_SUCH_PARTNER,
-- NO_SUCH_OFFER, NOT_MEMBER, SUSPENDED, ALREADY_ACTIVE, RENEW_REQUIRED,
-- CONFLICT.
--
-- docs/functions.md is the reference.

local DEFAULT_CHANNEL = 'mpn:invalidate'
local MAX_JSON = 65536          -- MPN_RECORD_MAX_JSON in mpn_record.h
local MAX_INT = 9007199254740992  -- 2^53
local MAX_TIME = 253402300799   -- 9999-12-31T23:59:59Z
local MAX_NAME = 64             -- MPN_NAME_MAX
local MAX_GRANTS = 64           -- MPN_RECORD_MAX_GRANTS
local MAX_BENEFITS = 1024       -- MPN_RECORD_MAX_BENEFITS

-- cjson decodes [] and {} alike, as an empty table.  An empty array is
-- read as EMPTY_ARRAY instead, a string no record can hold (the encoder
-- refuses NUL), which the encoder writes back as [] and which every check
-- on a field the gate reads refuses as "not an object".
local EMPTY_ARRAY = '\0[]'

-- Action Pack's benefits (spec section 1), used when mpn_subscribe is given
-- no benefits for offer action_pack.
local DEFAULT_BENEFITS = {
    action_pack = {
        developer_tools = 1, windows_enterprise = 10, visual_studio_pro = 3,
        vsts = 1, office365_e3 = 10, ems = 5, dynamics_crm = 5,
        azure_credits = 100
    }
}


-- errors ---------------------------------------------------------------

-- fail() raises {mpn = "CODE text"}; wrap() turns it into an error reply.
-- (error() with a plain table would get " script: ..." appended.)
local function fail(code, fmt, ...)
    error({mpn = code .. ' ' .. string.format(fmt, ...)}, 0)
end


local function wrap(body)
    return function(keys, args)
        local ok, res = pcall(body, keys, args)
        if ok then
            return res
        end
        if type(res) == 'table' and res.mpn then
            return redis.error_reply(res.mpn)
        end
        if type(res) == 'table' and res.err then
            return redis.error_reply(res.err)
        end
        error(res, 0)
    end
end


local function rcall(...)
    local res = redis.pcall(...)
    if type(res) == 'table' and res.err then
        error({mpn = res.err}, 0)
    end
    return res
end


-- calendar ---------------------------------------------------------------

-- (math, string and cjson can only be used at call time, not while the
-- library loads)
local function floor(x)
    return math.floor(x)
end


-- days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant)
local function days_from_civil(y, m, d)
    if m <= 2 then
        y = y - 1
    end
    local era = floor(y / 400)
    local yoe = y - era * 400
    local mp = (m > 2) and (m - 3) or (m + 9)
    local doy = floor((153 * mp + 2) / 5) + d - 1
    local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
    return era * 146097 + doe - 719468
end


local function civil_from_days(z)
    z = z + 719468
    local era = floor(z / 146097)
    local doe = z - era * 146097
    local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524)
                       - floor(doe / 146096)) / 365)
    local y = yoe + era * 400
    local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
    local mp = floor((5 * doy + 2) / 153)
    local d = doy - floor((153 * mp + 2) / 5) + 1
    local m = (mp < 10) and (mp + 3) or (mp - 9)
    if m <= 2 then
        y = y + 1
    end
    return y, m, d
end


local function is_leap(y)
    return (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0
end


local MDAYS = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}


local function days_in_month(y, m)
    if m == 2 and is_leap(y) then
        return 29
    end
    return MDAYS[m]
end


-- "YYYY-MM-DDTHH:MM:SS[.frac](Z|+00:00)" to Unix seconds, or nil.
-- Fractions are dropped, as the module does.
local function parse_time(s)
    if type(s) ~= 'string' then
        return nil
    end
    local y, mo, d, h, mi, se, rest = string.match(s,
        '^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt](%d%d):(%d%d):(%d%d)(.*)$')
    if not y then
        return nil
    end
    local frac = string.match(rest, '^%.%d+')
    if frac then
        rest = string.sub(rest, #frac + 1)
    end
    if rest ~= 'Z' and rest ~= 'z' and rest ~= '+00:00' then
        return nil
    end
    y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
    h, mi, se = tonumber(h), tonumber(mi), tonumber(se)
    if mo < 1 or mo > 12 or d < 1 or d > days_in_month(y, mo)
       or h > 23 or mi > 59 or se > 59
    then
        return nil
    end
    return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se
end


local function format_time(t)
    local days = floor(t / 86400)
    local secs = t - days * 86400
    local y, m, d = civil_from_days(days)
    return string.format('%04d-%02d-%02dT%02d:%02d:%02dZ', y, m, d,
        floor(secs / 3600), floor(secs % 3600 / 60), secs % 60)
end


-- The same calendar date and time of day one year later; 29 Feb becomes
-- 28 Feb.
local function add_year(t)
    local days = floor(t / 86400)
    local secs = t - days * 86400
    local y, m, d = civil_from_days(days)
    y = y + 1
    if m == 2 and d == 29 and not is_leap(y) then
        d = 28
    end
    local r = days_from_civil(y, m, d) * 86400 + secs
    if r > MAX_TIME then
        fail('BAD_ARGUMENT', 'date after year 9999')
    end
    return r
end


local function now_time()
    local t = redis.call('TIME')
    return tonumber(t[1])
end


-- JSON -----------------------------------------------------------------

-- cjson cannot tell an empty array from an empty object and prints large
-- integers in exponent form, so records are written by this encoder:
-- an empty table is {}, a table with keys 1..n is an array, integers are
-- printed as integers and object keys are sorted (stable output).

local function is_array(t)
    local n = #t
    if n == 0 then
        return false
    end
    local count = 0
    for _ in pairs(t) do
        count = count + 1
    end
    return count == n
end


local ESC = {
    ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
    ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t'
}


local function valid_utf8(s)
    if not string.find(s, '[\128-\255]') then
        return true
    end
    local i, n = 1, #s
    while i <= n do
        local c = string.byte(s, i)
        local len, min
        if c < 0x80 then
            len = 1
        elseif c >= 0xc2 and c <= 0xdf then
            len, min = 2, 0x80
        elseif c >= 0xe0 and c <= 0xef then
            len, min = 3, 0x800
        elseif c >= 0xf0 and c <= 0xf4 then
            len, min = 4, 0x10000
        else
            return false
        end
        if len > 1 then
            if i + len - 1 > n then
                return false
            end
            local cp = c % (2 ^ (7 - len))
            for j = i + 1, i + len - 1 do
                local cc = string.byte(s, j)
                if cc < 0x80 or cc > 0xbf then
                    return false
                end
                cp = cp * 64 + (cc - 0x80)
            end
            if cp < min or cp > 0x10ffff or (cp >= 0xd800 and cp <= 0xdfff)
            then
                return false
            end
        end
        i = i + len
    end
    return true
end


local function encode_string(s)
    if not string.find(s, '[%c"\\\128-\255]') then
        return '"' .. s .. '"'          -- the common case: plain ASCII
    end
    if string.find(s, '%z') then
        fail('BAD_RECORD', 'NUL character in a string')
    end
    if not valid_utf8(s) then
        fail('BAD_RECORD', 'string is not UTF-8')
    end
    return '"' .. string.gsub(s, '[%c"\\]', function(c)
        return ESC[c] or string.format('\\u%04x', string.byte(c))
    end) .. '"'
end


-- encode(v, out, n): appends v's JSON text to out from index n + 1 and
-- returns the new last index (a counter is cheaper than #out).
local encode


local function encode_number(x)
    if x ~= x or x == math.huge or x == -math.huge then
        fail('BAD_RECORD', 'number out of range')
    end
    if x % 1 == 0 and x > -MAX_INT and x < MAX_INT then
        return string.format('%d', x)
    end
    local s = string.format('%.14g', x)
    if tonumber(s) ~= x then
        s = string.format('%.17g', x)
    end
    return s
end


local function encode_table(v, out, n)
    if next(v) == nil then
        out[n + 1] = '{}'
        return n + 1
    end
    if v[1] ~= nil and is_array(v) then
        out[n + 1] = '['
        n = n + 1
        for i = 1, #v do
            if i > 1 then
                out[n + 1] = ','
                n = n + 1
            end
            n = encode(v[i], out, n)
        end
        out[n + 1] = ']'
        return n + 1
    end
    local names, k = {}, 0
    for name in pairs(v) do
        if type(name) ~= 'string' then
            fail('BAD_RECORD', 'mixed array and object')
        end
        k = k + 1
        names[k] = name
    end
    table.sort(names)
    out[n + 1] = '{'
    n = n + 1
    for i = 1, k do
        local name = names[i]
        out[n + 1] = (i > 1) and ',' or ''
        out[n + 2] = encode_string(name)
        out[n + 3] = ':'
        n = encode(v[name], out, n + 3)
    end
    out[n + 1] = '}'
    return n + 1
end


encode = function(v, out, n)
    local tv = type(v)
    if v == EMPTY_ARRAY then
        out[n + 1] = '[]'
    elseif tv == 'string' then
        out[n + 1] = encode_string(v)
    elseif tv == 'table' then
        return encode_table(v, out, n)
    elseif tv == 'number' then
        out[n + 1] = encode_number(v)
    elseif tv == 'boolean' then
        out[n + 1] = v and 'true' or 'false'
    elseif v == cjson.null then
        out[n + 1] = 'null'
    else
        fail('BAD_RECORD', 'value of type %s', tv)
    end
    return n + 1
end


local function to_json(v)
    local out = {}
    encode(v, out, 0)
    return table.concat(out)
end


local function mark_empty_arrays(s)
    if not string.find(s, '%[%s*%]') then
        return s                        -- the common case
    end
    local out, k, pos, from = {}, 0, 1, 1
    while true do
        local i = string.find(s, '["%[]', pos)
        if i == nil then
            break
        end
        if string.byte(s, i) == 34 then          -- '"': skip the string
            local j = i + 1
            while true do
                j = string.find(s, '["\\]', j)
                if j == nil then
                    return s                    -- unterminated: cjson says
                end
                if string.byte(s, j) == 92 then  -- '\': skip the escape
                    j = j + 2
                else
                    break
                end
            end
            pos = j + 1
        else
            local e = select(2, string.find(s, '^%[[ \t\r\n]*%]', i))
            if e then
                k = k + 1
                out[k] = string.sub(s, from, i - 1)
                k = k + 1
                out[k] = '"\\u0000[]"'
                from = e + 1
                pos = e + 1
            else
                pos = i + 1
            end
        end
    end
    k = k + 1
    out[k] = string.sub(s, from)
    return table.concat(out)
end


local function decode(s)
    local ok, v = pcall(cjson.decode, mark_empty_arrays(s))
    if not ok then
        return nil
    end
    return v
end


-- validation (spec section 5) --------------------------------------------

local ID_PATTERN = '^[A-Za-z0-9._-]+$'


local function valid_id(s)
    return type(s) == 'string' and #s >= 1 and #s <= 64
           and string.match(s, ID_PATTERN) ~= nil
end


-- a JSON object: a table with string keys only ({} counts as an object)
local function is_object(t)
    if type(t) ~= 'table' then
        return false
    end
    for k in pairs(t) do
        if type(k) ~= 'string' then
            return false
        end
    end
    return true
end


local function is_int(x)
    return type(x) == 'number' and x == floor(x) and x > -MAX_INT
           and x < MAX_INT
end


-- offer, area and benefit names: 1..64 bytes, no control characters
-- (MPN_NAME_MAX; they end up in variables and so in headers)
local function valid_name(s)
    return #s >= 1 and #s <= MAX_NAME and not string.find(s, '[%c\127]')
end


local function check_benefits(b, where, counts)
    if not is_object(b) then
        fail('BAD_RECORD', '%s.benefits is not an object', where)
    end
    for k, q in pairs(b) do
        if not valid_name(k) then
            fail('BAD_RECORD', '%s.benefits has a bad name', where)
        end
        if not is_int(q) or q < 0 then
            fail('BAD_RECORD', '%s.benefits.%s is not a non-negative integer',
                 where, k)
        end
        counts.benefits = counts.benefits + 1
        if counts.benefits > MAX_BENEFITS then
            fail('BAD_RECORD', 'too many benefits (over %d)', MAX_BENEFITS)
        end
    end
end


local function check_grant_name(name, what, counts)
    if not valid_name(name) then
        fail('BAD_RECORD', '%s has a bad name', what)
    end
    counts.grants = counts.grants + 1
    if counts.grants > MAX_GRANTS then
        fail('BAD_RECORD', 'too many grants (over %d)', MAX_GRANTS)
    end
end


local function check_time(t, where, optional)
    if t == nil and optional then
        return
    end
    if parse_time(t) == nil then
        fail('BAD_RECORD', '%s is not an RFC 3339 UTC time', where)
    end
end


local SUB_STATUS = {active = true, cancelled = true, expired = true}
local LEVELS = {silver = true, gold = true}


-- Checks every field the gate reads and that partner_id is the key's id;
-- raises BAD_RECORD naming the first wrong field.  Returns the partner id.
-- The key's id: its longest suffix of partner-id characters, at most 64
-- (with the default prefix, what follows "mpn:partner:").
local function key_id(key)
    local id = string.match(key, '[A-Za-z0-9._-]*$')
    if #id > 64 then
        id = string.sub(id, -64)
    end
    if id == '' then
        fail('BAD_ARGUMENT', 'the key ends in no partner id')
    end
    return id
end


local function validate(rec, key)
    if not is_object(rec) then
        fail('BAD_RECORD', 'not a JSON object')
    end
    if rec.v ~= 1 then
        fail('BAD_RECORD', 'wrong "v" (must be 1)')
    end
    local id = rec.partner_id
    if not valid_id(id) then
        fail('BAD_RECORD', 'partner_id missing or not ^[A-Za-z0-9._-]{1,64}$')
    end
    local kid = key_id(key)
    if id ~= kid then
        fail('BAD_RECORD', 'partner_id "%s" is not the key\'s id "%s"',
             id, kid)
    end
    if rec.network ~= nil and type(rec.network) ~= 'boolean' then
        fail('BAD_RECORD', 'network is not a boolean')
    end
    if rec.status ~= nil and rec.status ~= 'active'
       and rec.status ~= 'suspended'
    then
        fail('BAD_RECORD', 'status is not active or suspended')
    end
    local counts = {grants = 0, benefits = 0}
    if rec.rev ~= nil and not (is_int(rec.rev) and rec.rev >= 0) then
        fail('BAD_RECORD', 'rev is not a non-negative integer')
    end
    if rec.subscriptions ~= nil then
        if not is_object(rec.subscriptions) then
            fail('BAD_RECORD', 'subscriptions is not an object')
        end
        for name, s in pairs(rec.subscriptions) do
            check_grant_name(name, 'subscriptions', counts)
            local where = 'subscriptions.' .. name
            if not is_object(s) then
                fail('BAD_RECORD', '%s is not an object', where)
            end
            if not SUB_STATUS[s.status] then
                fail('BAD_RECORD',
                     '%s.status is not active, cancelled or expired', where)
            end
            check_time(s['end'], where .. '.end', false)
            check_time(s.start, where .. '.start', true)
            if s.auto_renew ~= nil and type(s.auto_renew) ~= 'boolean' then
                fail('BAD_RECORD', '%s.auto_renew is not a boolean', where)
            end
            if s.auto_renew_locked ~= nil
               and type(s.auto_renew_locked) ~= 'boolean'
            then
                fail('BAD_RECORD', '%s.auto_renew_locked is not a boolean',
                     where)
            end
            if s.benefits ~= nil then
                check_benefits(s.benefits, where, counts)
            end
        end
    end
    if rec.competencies ~= nil then
        if not is_object(rec.competencies) then
            fail('BAD_RECORD', 'competencies is not an object')
        end
        for name, c in pairs(rec.competencies) do
            check_grant_name(name, 'competencies', counts)
            local where = 'competencies.' .. name
            if not is_object(c) then
                fail('BAD_RECORD', '%s is not an object', where)
            end
            if not LEVELS[c.level] then
                fail('BAD_RECORD', '%s.level is not silver or gold', where)
            end
            check_time(c['end'], where .. '.end', true)
            if c.benefits ~= nil then
                check_benefits(c.benefits, where, counts)
            end
        end
    end
    return id
end


-- arguments ------------------------------------------------------------

local OPTIONS = {CHANNEL = true, REV = true}


-- Splits args into positional arguments (min..max of them) and trailing
-- option pairs "CHANNEL <name>" and "REV <n>", each at most once, in
-- either order.  Options are looked for only after the positional
-- arguments, so an offer (or benefits_json) that reads "channel" is never
-- taken for one; with an optional positional argument (max > min), the
-- parity of what follows the required ones tells whether it is there.
-- Returns {n = positional count, channel = name, rev = n or nil}.
local function parse_args(args, min, max, usage)
    local total = #args
    if total < min then
        fail('BAD_ARGUMENT', 'wrong number of arguments, expected %s', usage)
    end
    local n = min
    if max > min and (total - min) % 2 == 1 then
        n = min + 1
    end
    if (total - n) % 2 ~= 0 then
        fail('BAD_ARGUMENT', 'wrong number of arguments, expected %s', usage)
    end
    local opt = {n = n, channel = DEFAULT_CHANNEL}
    local seen = {}
    for i = n + 1, total, 2 do
        local name = string.upper(args[i])
        local value = args[i + 1]
        if not OPTIONS[name] then
            fail('BAD_ARGUMENT', 'unknown option "%s" (CHANNEL or REV), '
                 .. 'expected %s', string.sub(args[i], 1, 40), usage)
        end
        if seen[name] then
            fail('BAD_ARGUMENT', '%s given twice', name)
        end
        seen[name] = true
        if name == 'CHANNEL' then
            if value == '' then
                fail('BAD_ARGUMENT', 'empty channel name')
            end
            opt.channel = value
        else
            if not string.match(value, '^%d+$') or #value > 15 then
                fail('BAD_ARGUMENT', 'REV must be a non-negative integer, '
                     .. 'got "%s"', string.sub(value, 1, 40))
            end
            opt.rev = tonumber(value)
        end
    end
    return opt
end


local function the_key(keys)
    if #keys ~= 1 then
        fail('BAD_ARGUMENT', 'expected exactly one key (numkeys 1)')
    end
    return keys[1]
end


local function offer_arg(s)
    if not valid_id(s) then
        fail('BAD_ARGUMENT', 'offer must match ^[A-Za-z0-9._-]{1,64}$')
    end
    return s
end


local function now_arg(s)
    if type(s) ~= 'string' or not string.match(s, '^%d+$') or #s > 12 then
        fail('BAD_ARGUMENT', 'now must be Unix seconds, got "%s"',
             string.sub(tostring(s), 1, 40))
    end
    local t = tonumber(s)
    if t > MAX_TIME then
        fail('BAD_ARGUMENT', 'now is after year 9999')
    end
    return t
end


-- storing ----------------------------------------------------------------

-- REV n: refused unless the stored rev is n (a page shown at rev n acts
-- at most once).
local function check_rev(opt, rev)
    if opt.rev ~= nil and opt.rev ~= rev then
        fail('CONFLICT', 'the record is at rev %d, not %d: reload it and '
             .. 'try again', rev, opt.rev)
    end
end


-- Loads and validates the stored record; NO_SUCH_PARTNER when absent,
-- CONFLICT when opt.rev is not its rev.
local function load(key, opt)
    local raw = rcall('GET', key)
    if not raw then
        fail('NO_SUCH_PARTNER', 'no record at %s', key)
    end
    local rec = decode(raw)
    if rec == nil then
        fail('BAD_RECORD', 'stored value at %s is not JSON', key)
    end
    validate(rec, key)
    check_rev(opt, rec.rev or 0)
    return rec
end


-- The stored record as far as it can be read (nil when there is none or
-- it is not JSON) and its rev (0 when it has none).
local function stored(key)
    local raw = rcall('GET', key)
    local rec = raw and decode(raw)
    if type(rec) ~= 'table' then
        return nil, 0
    end
    if is_int(rec.rev) and rec.rev >= 0 then
        return rec, rec.rev
    end
    return rec, 0
end


-- Validates, stamps and writes rec; publishes the key's id; returns the
-- new rev.
local function store(key, rec, old_rev, now, channel)
    local id = validate(rec, key)
    rec.rev = old_rev + 1
    rec.updated_at = format_time(now or now_time())
    local json = to_json(rec)
    if #json > MAX_JSON then
        fail('BAD_RECORD', 'record larger than %d bytes', MAX_JSON)
    end
    rcall('SET', key, json)
    rcall('PUBLISH', channel, id)
    return rec.rev
end


local function subscription(rec, offer, key)
    local s = rec.subscriptions and rec.subscriptions[offer]
    if s == nil then
        fail('NO_SUCH_OFFER', 'partner at %s has no subscription %s',
             key, offer)
    end
    return s
end


local function not_suspended(rec)
    if rec.status == 'suspended' then
        fail('SUSPENDED', 'partner %s is suspended', rec.partner_id)
    end
end


-- The subscription's end in Unix seconds, or nil when it cannot be read.
local function end_of(s)
    return type(s) == 'table' and parse_time(s['end']) or nil
end


-- Auto-renew, once off, comes back on only through a renewal: a whole
-- record may turn it on for a subscription the stored record has with it
-- off only if it also moves that subscription's end later (it records a
-- renewal, or a new subscription).
local function check_auto_renew_put(rec, old, key)
    local subs = rec.subscriptions
    local old_subs = type(old) == 'table' and is_object(old.subscriptions)
                     and old.subscriptions or nil
    if not is_object(subs) or old_subs == nil then
        return
    end
    for offer, s in pairs(subs) do
        local o = old_subs[offer]
        if type(s) == 'table' and s.auto_renew == true and type(o) == 'table'
           and o.auto_renew == false
        then
            local new_end, old_end = end_of(s), end_of(o)
            if new_end ~= nil and old_end ~= nil and new_end <= old_end then
                fail('RENEW_REQUIRED', 'auto-renew of %s at %s is off; a '
                     .. 'record can turn it on only with a later end (a '
                     .. 'renewal)', offer, key)
            end
        end
    end
end


-- the functions ----------------------------------------------------------

local function mpn_put(keys, args)
    local key = the_key(keys)
    local opt = parse_args(args, 1, 1, 'json [CHANNEL ch] [REV n]')
    local rec = decode(args[1])
    if rec == nil then
        fail('BAD_RECORD', 'not JSON')
    end
    local old, old_rev = stored(key)
    check_rev(opt, old_rev)
    validate(rec, key)
    check_auto_renew_put(rec, old, key)
    return store(key, rec, old_rev, nil, opt.channel)
end


local function mpn_subscribe(keys, args)
    local key = the_key(keys)
    local opt = parse_args(args, 2, 3,
                           'offer now [benefits_json] [CHANNEL ch] [REV n]')
    local offer = offer_arg(args[1])
    local now = now_arg(args[2])
    local benefits
    if opt.n == 3 then
        benefits = decode(args[3])
        if not is_object(benefits) then
            fail('BAD_ARGUMENT', 'benefits_json is not a JSON object')
        end
        for k, q in pairs(benefits) do
            if not valid_name(k) or not is_int(q) or q < 0 then
                fail('BAD_ARGUMENT', 'benefit %s is not a name with a '
                     .. 'non-negative integer', k)
            end
        end
    else
        benefits = DEFAULT_BENEFITS[offer]
        if benefits == nil then
            fail('NO_SUCH_OFFER',
                 'no default benefits for offer %s; pass benefits_json', offer)
        end
    end
    local end_ = add_year(now)
    local rec = load(key, opt)
    not_suspended(rec)
    if rec.network ~= true then
        fail('NOT_MEMBER', 'partner %s is not a network member',
             rec.partner_id)
    end
    local s = rec.subscriptions and rec.subscriptions[offer]
    if s and s.status == 'active' and now < parse_time(s['end']) then
        fail('ALREADY_ACTIVE', 'subscription %s is current until %s; '
             .. 'renew it instead', offer, s['end'])
    end
    if rec.subscriptions == nil then
        rec.subscriptions = {}
    end
    rec.subscriptions[offer] = {
        status = 'active',
        start = format_time(now),
        ['end'] = format_time(end_),
        auto_renew = true,
        benefits = benefits
    }
    return store(key, rec, rec.rev or 0, now, opt.channel)
end


local function mpn_set_auto_renew(keys, args)
    local key = the_key(keys)
    local opt = parse_args(args, 2, 2, 'offer on|off [CHANNEL ch] [REV n]')
    local offer = offer_arg(args[1])
    local on = string.lower(args[2])
    if on ~= 'on' and on ~= 'off' then
        fail('BAD_ARGUMENT', 'expected on or off, got "%s"',
             string.sub(args[2], 1, 40))
    end
    local rec = load(key, opt)
    local s = subscription(rec, offer, key)
    if on == 'off' then
        s.auto_renew = false
    elseif s.auto_renew == false then
        -- off for any reason (turned off, cancelled, or written so): only
        -- a renewal turns it on again
        fail('RENEW_REQUIRED', 'auto-renew of %s is off; it can be turned '
             .. 'on again only by a renewal', offer)
    else
        s.auto_renew = true
    end
    -- auto_renew == false is the lock; the flag older versions kept goes
    s.auto_renew_locked = nil
    return store(key, rec, rec.rev or 0, nil, opt.channel)
end


local function mpn_renew(keys, args)
    local key = the_key(keys)
    local opt = parse_args(args, 2, 2, 'offer now [CHANNEL ch] [REV n]')
    local offer = offer_arg(args[1])
    local now = now_arg(args[2])
    local rec = load(key, opt)
    not_suspended(rec)
    local s = subscription(rec, offer, key)
    local base = parse_time(s['end'])
    if now > base then
        base = now
    end
    s['end'] = format_time(add_year(base))
    s.status = 'active'
    s.auto_renew = true
    s.auto_renew_locked = nil
    return store(key, rec, rec.rev or 0, now, opt.channel)
end


local function mpn_cancel(keys, args)
    local key = the_key(keys)
    local opt = parse_args(args, 1, 1, 'offer [CHANNEL ch] [REV n]')
    local offer = offer_arg(args[1])
    local rec = load(key, opt)
    local s = subscription(rec, offer, key)
    s.status = 'cancelled'
    s.auto_renew = false
    return store(key, rec, rec.rev or 0, nil, opt.channel)
end


-- metered benefits (spec section 12) ---------------------------------------

local MAX_AMOUNT = 1000000
local MAX_TOKEN = 256


local function count_arg(s, what, min, max)
    if type(s) ~= 'string' or not string.match(s, '^%d+$') or #s > 15 then
        fail('BAD_ARGUMENT', '%s must be a whole number, got "%s"', what,
             string.sub(tostring(s), 1, 40))
    end
    local n = tonumber(s)
    if n < min or n > max then
        fail('BAD_ARGUMENT', '%s must be from %d to %d, got %s', what, min,
             max, s)
    end
    return n
end


-- Takes amount units of a benefit's allowance for one period, in one
-- step: the usage hash holds "used" and one "idem:<token>" field per
-- recorded token; it expires a day after the period ends.  A token seen
-- before takes nothing ([used, "repeat"]); past the allowance nothing is
-- taken and the error starts with QUOTA.  Usage is not a record: nothing is
-- published.
local function mpn_consume(keys, args)
    local key = the_key(keys)
    local n = #args
    if n ~= 3 and n ~= 5 then
        fail('BAD_ARGUMENT', 'wrong number of arguments, expected '
             .. 'allowance amount period_end_unix [IDEM token]')
    end
    local allowance = count_arg(args[1], 'allowance', 0, MAX_INT - 1)
    local amount = count_arg(args[2], 'amount', 1, MAX_AMOUNT)
    local period_end = count_arg(args[3], 'period_end_unix', 0, MAX_TIME)
    local token
    if n == 5 then
        if string.upper(args[4]) ~= 'IDEM' then
            fail('BAD_ARGUMENT', 'unknown option "%s" (IDEM)',
                 string.sub(args[4], 1, 40))
        end
        if #args[5] > MAX_TOKEN then
            fail('BAD_ARGUMENT', 'IDEM token longer than %d bytes', MAX_TOKEN)
        end
        if args[5] ~= '' then          -- an empty value means no token
            token = 'idem:' .. args[5]
        end
    end
    local expire_at = period_end + 86400
    if expire_at <= now_time() then
        fail('BAD_ARGUMENT', 'the period ended more than a day ago (%s)',
             format_time(period_end))
    end

    local used = tonumber(rcall('HGET', key, 'used') or '0') or 0
    if token ~= nil and rcall('HEXISTS', key, token) == 1 then
        return {used, 'repeat'}
    end
    if used + amount > allowance then
        fail('QUOTA', 'used %d of %d, %d more asked for', used, allowance,
             amount)
    end
    used = rcall('HINCRBY', key, 'used', amount)
    if token ~= nil then
        rcall('HSET', key, token, used)
    end
    rcall('EXPIREAT', key, expire_at)
    return {used, 'ok'}
end


-- Writes: no flags, so none of them is `no-writes` and each is refused on
-- a read-only replica and when Redis is out of memory.
redis.register_function{function_name = 'mpn_put',
                        callback = wrap(mpn_put), flags = {}}
redis.register_function{function_name = 'mpn_subscribe',
                        callback = wrap(mpn_subscribe), flags = {}}
redis.register_function{function_name = 'mpn_set_auto_renew',
                        callback = wrap(mpn_set_auto_renew), flags = {}}
redis.register_function{function_name = 'mpn_renew',
                        callback = wrap(mpn_renew), flags = {}}
redis.register_function{function_name = 'mpn_cancel',
                        callback = wrap(mpn_cancel), flags = {}}
redis.register_function{function_name = 'mpn_consume',
                        callback = wrap(mpn_consume), flags = {}}
