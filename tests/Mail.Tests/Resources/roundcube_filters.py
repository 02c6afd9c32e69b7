# Roundcube's managesieve plugin driven in headless Chromium, as a user would:
# log in, create the filter "subject contains WORD -> FOLDER", switch on an
# out-of-office reply, then read the filter list back. Prints one line per step:
#   saved: <Roundcube's notice>    vacation: <notice>    listed: <filter names>
# Usage: roundcube_filters.py URL USER PASSWORD WORD FOLDER VACATION-SUBJECT VACATION-TEXT
import sys
import roundcube_browser
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from selenium.webdriver.support import expected_conditions as EC

url, user, password, word, folder, vsubject, vtext = sys.argv[1:8]
driver, wait = roundcube_browser.start()


def notice():
    # The first message Roundcube shows in its message stack, past its 'loading' notices (read by
    # script: the stack changes under us).
    read = "return Array.from(document.querySelectorAll('#messagestack div:not(.loading)')).map(e => e.innerText.trim()).filter(t => t)[0] || ''"
    return wait.until(lambda d: d.execute_script(read))


try:
    roundcube_browser.login(driver, wait, url, user, password)

    # Settings > Filters > Create: the form Roundcube shows in its frame.
    driver.get(url + '?_task=settings&_action=plugin.managesieve-action&_framed=1')
    wait.until(EC.presence_of_element_located((By.ID, '_name'))).send_keys(f'{word} to {folder}')
    Select(driver.find_element(By.ID, 'header0')).select_by_value('subject')
    Select(driver.find_element(By.ID, 'rule_op0')).select_by_value('contains')
    driver.find_element(By.CSS_SELECTOR, "input[name='_rule_target[0][]']").send_keys(word)
    Select(driver.find_element(By.ID, 'action_type0')).select_by_value('fileinto')
    Select(driver.find_element(By.ID, 'action_mailbox0')).select_by_value(folder)
    form = driver.find_element(By.ID, '_name')
    driver.execute_script("rcmail.command('plugin.managesieve-save')")
    # The form posts and the page comes back (with an error notice if Roundcube refused it).
    wait.until(EC.staleness_of(form))
    wait.until(EC.presence_of_element_located((By.ID, '_name')))
    errors = [e.text.strip() for e in driver.find_elements(By.CSS_SELECTOR, '.error, .invalid-feedback') if e.text.strip()]
    print('saved:', 'errors: ' + ' | '.join(errors) if errors else 'ok', flush=True)

    # Settings > Out of Office.
    driver.get(url + '?_task=settings&_action=plugin.managesieve-vacation')
    wait.until(EC.presence_of_element_located((By.ID, 'vacation_subject'))).send_keys(vsubject)
    driver.find_element(By.ID, 'vacation_reason').send_keys(vtext)
    Select(driver.find_element(By.ID, 'vacation_status')).select_by_value('on')
    driver.execute_script("rcmail.command('plugin.managesieve-save')")
    print('vacation:', notice(), flush=True)

    # Settings > Filters: the list as Roundcube reads it back through ManageSieve.
    driver.get(url + '?_task=settings&_action=plugin.managesieve')
    wait.until(EC.presence_of_element_located((By.ID, 'filterslist')))
    names = [e.text.strip() for e in driver.find_elements(By.CSS_SELECTOR, '#filterslist tbody td') if e.text.strip()]
    print('listed:', ' | '.join(names), flush=True)
finally:
    driver.quit()
