-- POSTs a receipt of 1 to one of 1,000 skus chosen at random.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"quantity": 1}'

request = function()
    return wrk.format(nil, "/v1/inventory/sku-" .. math.random(1, 1000) .. "/receipts")
end
