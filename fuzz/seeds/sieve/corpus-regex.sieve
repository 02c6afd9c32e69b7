require ["regex","variables","fileinto"];
if header :regex "subject" "^\\[([a-z]+)\\] (.*)$" { fileinto "list-${1}"; }
if header :regex "message-id" "^<([0-9]+)\\." { fileinto "numeric-${1}"; }
if address :regex :domain "from" "^(shop|lottery)\\.example$" { fileinto "regex-${1}"; }
if header :regex :comparator "i;octet" "subject" "invoice" { fileinto "octet-lower"; }
