-- make bench's wrk script: GET the gated route for one partner after another,
-- as the judge's lib/rotate.lua and lib/rotate_token.lua do (same requests,
-- same RESULT line), with a choice of partner:
--   PEERS_N        partners PEERS_ID_BASE .. PEERS_ID_BASE+PEERS_N-1
--   PEERS_TOKENS   a file of one token per partner (in id order): sent as
--                  "Authorization: Bearer <token>" instead of X-Partner-Id
--   PEERS_DIST     uniform: every partner in turn (the judge's rotation);
--                  zipf: partner of rank k (k = 1 .. N) with probability
--                  (1/k) / H(N), a pseudo-random sequence fixed by
--   PEERS_SEED     (12345): bench.sh gives each wrk run its own, so that a
--                  measured run does not replay its warm-up's draws
--   PEERS_START    uniform: begin with the partner at this offset (a pass
--                  that fills caches runs wrk again and again from where the
--                  last run stopped)
-- Up to 100,000 requests are built once in init(), as the judge does; past
-- that each is joined from a prefix, the id (or token) and a suffix.
local base = tonumber(os.getenv("PEERS_ID_BASE")) or 5000000
local n = tonumber(os.getenv("PEERS_N")) or 10000
local path = os.getenv("PEERS_PATH") or "/benefits/azure-credits"
local tokens_file = os.getenv("PEERS_TOKENS")
if tokens_file == "" then tokens_file = nil end
local dist = os.getenv("PEERS_DIST") or "uniform"
local start = tonumber(os.getenv("PEERS_START") or "") or 0
local seed = tonumber(os.getenv("PEERS_SEED") or "") or 12345
local PREBUILD_MAX = 100000

local values = {}     -- header value per partner (1-based), or nil: the id
local reqs = {}       -- prebuilt requests per partner
local prefix, suffix
local seq, seqlen     -- zipf: ranks to send, in order
local i = 0

local function header(k)
    if tokens_file then
        return "Bearer " .. values[k]
    end
    return tostring(base + k - 1)
end

local function build(k)
    return prefix .. header(k) .. suffix
end

function init(args)
    local name = tokens_file and "Authorization" or "X-Partner-Id"
    if tokens_file then
        local f = assert(io.open(tokens_file, "r"))
        local m = 0
        for tok in f:lines() do
            if tok ~= "" then m = m + 1; values[m] = tok end
        end
        f:close()
        assert(m == n, string.format("%s holds %d tokens, PEERS_N=%d", tokens_file, m, n))
    end

    local t = wrk.format("GET", path, { [name] = "\1" })
    local at = assert(t:find("\1", 1, true))
    prefix, suffix = t:sub(1, at - 1), t:sub(at + 1)

    if n <= PREBUILD_MAX then
        for k = 1, n do reqs[k] = build(k) end
    end

    if dist == "zipf" then
        -- cumulative weights, then a fixed sequence drawn by binary search
        local cdf, h = {}, 0
        for k = 1, n do h = h + 1 / k; cdf[k] = h end
        math.randomseed(seed)
        seqlen = math.max(n, 1000000)
        seq = {}
        for s = 1, seqlen do
            local u = math.random() * h
            local lo, hi = 1, n
            while lo < hi do
                local mid = math.floor((lo + hi) / 2)
                if cdf[mid] < u then lo = mid + 1 else hi = mid end
            end
            seq[s] = lo
        end
    elseif dist ~= "uniform" then
        error("PEERS_DIST must be uniform or zipf, not " .. dist)
    else
        i = start % n
    end
end

function request()
    local k
    i = i + 1
    if seq then
        if i > seqlen then i = 1 end
        k = seq[i]
    else
        if i > n then i = 1 end
        k = i
    end
    return reqs[k] or build(k)
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "RESULT requests=%d duration_us=%d rps=%.1f mean_us=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
        "non2xx3xx=%d connect_err=%d read_err=%d write_err=%d timeouts=%d\n",
        summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
        latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
        e.status, e.connect, e.read, e.write, e.timeout))
end
