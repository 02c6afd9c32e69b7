require ["relational","comparator-i;ascii-numeric","fileinto"];
if address :count "ge" :comparator "i;ascii-numeric" ["to","cc"] "3" { fileinto "many-recipients"; }
if header :count "eq" :comparator "i;ascii-numeric" "received" "2" { fileinto "two-hops"; }
if header :value "gt" :comparator "i;ascii-numeric" "x-priority" "4" { fileinto "low-priority"; }
if header :value "lt" "subject" "N" { fileinto "subject-before-n"; }
if header :count "eq" :comparator "i;ascii-numeric" "x-nothing" "0" { fileinto "no-x-nothing"; }
