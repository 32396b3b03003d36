-- The background load of bench/freshness: POSTs a receipt of 1 to one of 1,000 skus chosen at
-- random; each connection waits ORDO_BENCH_DELAY_MS between requests (0: none).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"quantity": 1}'

function init(args)
    pause = tonumber(os.getenv("ORDO_BENCH_DELAY_MS") or "0")
end

request = function()
    return wrk.format(nil, "/v1/inventory/sku-" .. math.random(1, 1000) .. "/receipts")
end

delay = function()
    return pause
end
