require ["spamtest","spamtestplus","fileinto","relational","comparator-i;ascii-numeric"];
if spamtest :value "ge" :comparator "i;ascii-numeric" "6" { fileinto "Junk"; stop; }
if spamtest :value "eq" :comparator "i;ascii-numeric" "0" { fileinto "untested"; }
if spamtest :percent :value "eq" :comparator "i;ascii-numeric" "0" { fileinto "clean-percent"; }
