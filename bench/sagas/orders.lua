-- POSTs orders of 1 to 3 lines (distinct skus out of ORDO_BENCH_SKUS), each paid from one of
-- ORDO_BENCH_ACCOUNTS accounts; each wrk thread stops after ORDO_BENCH_ORDERS_PER_THREAD
-- answers, and each connection waits ORDO_BENCH_DELAY_MS between orders (0: none). Stock
-- and funds are plenty: every order should be confirmed.
local next_id = 1

function setup(thread)
    thread:set("id", next_id)
    next_id = next_id + 1
end

function init(args)
    math.randomseed(id * 7919 + os.time())
    skus = tonumber(os.getenv("ORDO_BENCH_SKUS"))
    accounts = tonumber(os.getenv("ORDO_BENCH_ACCOUNTS"))
    per_thread = tonumber(os.getenv("ORDO_BENCH_ORDERS_PER_THREAD"))
    pause = tonumber(os.getenv("ORDO_BENCH_DELAY_MS") or "0")
    answered = 0
    rejected = 0
end

request = function()
    local lines, used = {}, {}
    for _ = 1, math.random(1, 3) do
        local sku = math.random(1, skus)
        if not used[sku] then
            used[sku] = true
            lines[#lines + 1] = string.format('{"sku": "sku-%d", "quantity": 1, "unit_price": 100}', sku)
        end
    end
    local account = math.random(1, accounts)
    local body = string.format('{"customer_id": "customer-%d", "account_id": "acct-%d", "lines": [%s]}',
        account, account, table.concat(lines, ", "))
    return wrk.format("POST", "/v1/orders", {["Content-Type"] = "application/json"}, body)
end

delay = function()
    return pause
end

response = function(status)
    answered = answered + 1
    if status ~= 202 then rejected = rejected + 1 end
    if answered >= per_thread then wrk.thread:stop() end
end
