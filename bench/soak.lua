-- The request mix of bench/soak.sh: mostly cached pages, with uncached PHP,
-- static files, 404s, refused paths and rate-limited login POSTs.
local paths = {
  "/", "/", "/", "/", "/?p=1", "/?p=1", "/feed/",
  "/wp-login.php",
  "/wp-includes/css/dashicons.min.css", "/wp-includes/js/jquery/jquery.min.js",
  "/no-such-page-", "/wp-config.php", "/.git/config", "/wp-content/uploads/x.php",
}
math.randomseed(os.time())
request = function()
  local r = math.random(1, #paths + 2)
  if r == #paths + 1 then
    return wrk.format("GET", "/?s=term" .. math.random(1, 100000))
  elseif r == #paths + 2 then
    return wrk.format("POST", "/wp-login.php", {["Content-Type"] = "application/x-www-form-urlencoded"}, "log=admin&pwd=wrong")
  end
  local p = paths[r]
  if p == "/no-such-page-" then p = p .. math.random(1, 100000) end
  return wrk.format("GET", p)
end
