require ["editheader","fileinto","variables"];
addheader "X-Filtered" "yes";
if header :is "x-filtered" "yes" { fileinto "saw-added"; }
deleteheader "x-spam-status";
if not exists "x-spam-status" { fileinto "deleted"; }
addheader :last "X-Order" "last";
deleteheader :index 1 "received";
if header :count "eq" :comparator "i;ascii-numeric" "received" "1" { fileinto "received-kept"; }
deleteheader :contains "x-priority" "3";
if not exists "x-priority" { fileinto "priority-3-gone"; }
