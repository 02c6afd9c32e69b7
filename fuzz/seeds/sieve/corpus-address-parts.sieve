require ["fileinto","subaddress"];
if address :domain :is "from" "example.com" { fileinto "from-example-com"; }
if address :localpart :is ["to","cc"] "dave" { fileinto "to-dave"; }
if address :all :contains "cc" "+lists@" { fileinto "cc-lists"; }
if address :user "cc" "carol" { fileinto "carol"; }
if address :detail "cc" "lists" { fileinto "carol-lists"; }
if address :detail "to" "billing" { fileinto "billing"; }
if address :is "from" "winner@lottery.example" { fileinto "winner"; }
if address :matches :domain "from" "*.example.com" { fileinto "subdomain"; }
if address :is "sender" "announce-bounces@lists.example.com" { fileinto "sender"; }
