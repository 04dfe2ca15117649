-- wrk script for benches/load.sh: per 100 requests, 99 plain pages of the demo shop and one
-- landing from Sovendus with a fresh token (a new visitor: wrk keeps no cookies).
local pages = { "/products/1", "/products/2?color=red&size=m", "/cart", "/products/3?page=2" }
local threads = 0
local counter = 0

function setup(thread)
  thread:set("thread_number", threads)
  threads = threads + 1
end

function request()
  counter = counter + 1
  if counter % 100 == 0 then
    local token = string.format("1095752fb409-457a-%04x-%012x", thread_number, counter)
    return wrk.format("GET", "/products/1?sovReqToken=" .. token)
  end
  return wrk.format("GET", pages[counter % #pages + 1])
end
