require ["include","variables","fileinto"];
global "folder";
if header :contains "subject" "Meeting" { fileinto "${folder}"; }
if header :contains "subject" "Release" { set "folder" "changed"; return; }
fileinto "after-return";
