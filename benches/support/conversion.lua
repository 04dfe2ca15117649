-- wrk script: POST a conversion to the sandbox, as the client does (benches/conversion.rs).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"apiKey":"sandbox-api-key-0000"}'
