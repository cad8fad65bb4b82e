-- GET /v1/decisions/{id} over the stored decisions' ids, for wrk (Debian's `wrk`):
--   wrk -t2 -c16 -d20s -s bench/by_id.lua http://127.0.0.1:8000 -- KEY IDS_FILE
-- KEY: an API key with decisions:read; IDS_FILE: one SK_ID_CURR a line (bench/api_wrk.sh writes both).
local ids, key, n = {}, nil, 0

function init(args)
  key = args[1]
  for line in io.lines(args[2]) do ids[#ids + 1] = line end
end

function request()
  n = n + 1
  return wrk.format("GET", "/v1/decisions/" .. ids[(n % #ids) + 1], { ["X-API-Key"] = key })
end
