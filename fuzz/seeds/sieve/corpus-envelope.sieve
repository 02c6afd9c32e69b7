require ["envelope","fileinto","subaddress"];
if envelope :detail "to" "billing" { fileinto "Billing"; }
elsif envelope :domain :is "from" "lists.example.com" { fileinto "Lists"; }
elsif envelope :localpart :is "from" "" { fileinto "Bounces"; }
else { if envelope :all :is "to" "alice@example.org" { fileinto "Direct"; } }
