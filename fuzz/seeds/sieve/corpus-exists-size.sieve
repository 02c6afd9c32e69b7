require ["fileinto"];
if exists ["subject", "date"] { fileinto "has-subject-date"; }
if size :over 1K { fileinto "over-1k"; }
if size :under 100 { fileinto "under-100"; }
if not exists "message-id" { discard; stop; }
if anyof (not exists "x-priority", allof (header :contains "from" "Bob", not header :contains "to" "nobody")) { fileinto "logic"; }
