require ["copy"];
if address :domain "from" "example.com" { redirect :copy "bob-archive@example.net"; }
if header :contains "subject" "Invoice" { redirect "accounts@example.org"; redirect "accounts@example.org"; }
if header :contains "list-id" "announce" { redirect "not an address"; }
