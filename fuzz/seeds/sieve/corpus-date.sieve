require ["date","relational","fileinto","variables"];
if date :is "date" "year" "2026" { fileinto "y2026"; }
if date :is :originalzone "date" "zone" "+0200" { fileinto "zone-plus2"; }
if date :is :zone "+0100" "date" "hour" "16" { fileinto "hour16-in-plus1"; }
if date :value "ge" :originalzone "date" "hour" "14" { fileinto "afternoon"; }
if date :is "date" "weekday" "1" { fileinto "monday"; }
if date :is :zone "+0000" "date" "date" "2026-12-05" { fileinto "dec5"; }
if date :matches :zone "-0500" "date" "iso8601" "2026-12-06T22:*" { fileinto "iso"; }
if date :is :zone "+0000" "date" "julian" "61379" { fileinto "julian"; }
if currentdate :value "ge" "year" "2020" { fileinto "now-after-2020"; }
if not exists "date" { fileinto "no-date"; }
