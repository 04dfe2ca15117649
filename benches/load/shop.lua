-- wrk script for benches/load.sh: per 100 requests, 99 plain pages of the demo shop and one
-- landing from Sovendus with its own token (a new visitor: wrk keeps no cookies). The requests
-- are formatted once, in init, so that wrk spends its CPU on sending them, not on Lua.
local pages = { "/products/1", "/products/2?color=red&size=m", "/cart", "/products/3?page=2" }
local requests = {}
local next_request = 0
local threads = 0

function setup(thread)
  thread:set("thread_number", threads)
  threads = threads + 1
end

function init(args)
  -- 500 landings, each with its own token, among 49,500 plain pages.
  for i = 1, 50000 do
    if i % 100 == 0 then
      local token = string.format("1095752fb409-457a-%04x-%012x", thread_number, i)
      requests[i] = wrk.format("GET", "/products/1?sovReqToken=" .. token)
    else
      requests[i] = wrk.format("GET", pages[i % #pages + 1])
    end
  end
end

function request()
  next_request = next_request % #requests + 1
  return requests[next_request]
end
