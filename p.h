HTTP/2 200 
content-type: text/html; charset=UTF-8
x-pingback: https://localhost:18443/xmlrpc.php
link: <https://localhost:18443/wp-json/>; rel="https://api.w.org/"
link: <https://localhost:18443/wp-json/wp/v2/posts/21>; rel="alternate"; type="application/json"
link: <https://localhost:18443/?p=21>; rel=shortlink
vary: Accept-Encoding
etag: W/"c47e2dabab77d56b"
content-length: 60262
age: 3
x-cache: HIT
date: Tue, 01 Dec 2026 10:27:49 GMT

